"""Decode + encode every code object of this interpreter's stdlib with frontrun and with the
`bytecode` library (ConcreteBytecode.from_code(c).to_code()), on the same objects in one run.

    python benchmarks/bytecode_roundtrip.py [--sample N]   # N: use every N-th code object

Needs `pip install bytecode==0.19.1` for the comparison (3.11+; without it only frontrun is
timed). Compiling the stdlib is not timed.
"""

import argparse
import gc
import glob
import os
import sys
import sysconfig
import time
import types
import warnings

from frontrun import bytecode as frontrun_bytecode


def stdlib_code_objects():
    lib = sysconfig.get_paths()["stdlib"]
    files = sorted(f for f in glob.glob(os.path.join(lib, "**", "*.py"), recursive=True) if "site-packages" not in f)
    codes = []

    def walk(code):
        codes.append(code)
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                walk(c)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            try:
                with open(path, "rb") as f:
                    walk(compile(f.read(), path, "exec", dont_inherit=True))
            except (SyntaxError, ValueError, UnicodeDecodeError):
                pass
    return codes


def same(a, b):
    return (
        a.co_code == b.co_code
        and a.co_linetable == b.co_linetable
        and getattr(a, "co_exceptiontable", b"") == getattr(b, "co_exceptiontable", b"")
    )


def timed(label, fn, codes, repeat=1):
    """Best of `repeat` passes over `codes`, with the cyclic GC off (each pass allocates one
    new code object per input, which would otherwise trigger collections mid-measurement)."""
    failures = differing = 0
    best = float("inf")
    for _ in range(repeat):
        results = []
        gc.disable()
        start = time.perf_counter()
        for c in codes:
            try:
                results.append(fn(c))
            except Exception:
                results.append(None)
        best = min(best, time.perf_counter() - start)
        gc.enable()
    for c, r in zip(codes, results):
        if r is None:
            failures += 1
        elif not same(c, r):
            differing += 1
    per = best / len(codes) * 1e6
    print(f"{label:>16}: {best:8.3f} s  ({per:7.2f} us/code object)  failures {failures}  differing bytes {differing}")
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=int, default=1, help="use every N-th code object")
    args = parser.parse_args()
    codes = stdlib_code_objects()[:: args.sample]
    print(f"Python {sys.version.split()[0]}: {len(codes)} code objects")
    ours = timed("frontrun", lambda c: frontrun_bytecode.reassemble(c, recursive=False), codes, repeat=3)
    try:
        import bytecode
    except ImportError:
        print("bytecode library not installed: no comparison")
        return
    if sys.version_info < (3, 11):
        print("bytecode 0.19.1 does not support 3.10: no comparison")
        return
    theirs = timed(f"bytecode {bytecode.__version__}", lambda c: bytecode.ConcreteBytecode.from_code(c).to_code(), codes)
    print(f"ratio: frontrun is {theirs / ours:.0f}x faster")


if __name__ == "__main__":
    main()
