"""Shared fixtures: the running interpreter's stdlib, compiled once per session."""

import glob
import os
import sys
import sysconfig
import time
import warnings

import pytest

VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture(scope="session")
def stdlib():
    """Every module of this interpreter's stdlib (test suite included), compiled from source."""
    lib = sysconfig.get_paths()["stdlib"]
    files = sorted(f for f in glob.glob(os.path.join(lib, "**", "*.py"), recursive=True) if "site-packages" not in f)
    start = time.perf_counter()
    modules = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            try:
                with open(path, "rb") as f:
                    source = f.read()
                modules.append(compile(source, path, "exec", dont_inherit=True))
            except (SyntaxError, ValueError, UnicodeDecodeError):
                continue  # files this interpreter cannot compile (test data, lib2to3 grammar samples)
    print(f"\n[{VERSION}] compiled {len(modules)}/{len(files)} stdlib files in {time.perf_counter() - start:.1f}s")
    assert len(modules) > 1000
    return modules
