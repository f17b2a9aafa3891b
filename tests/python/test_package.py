import sys

import frontrun
from frontrun import _native


def test_native_module_loads_from_the_installed_package():
    assert _native.__name__ == "frontrun._native"
    assert frontrun.__version__ == _native.__version__


def test_one_abi3_build_serves_this_interpreter():
    # The extension is built once against the stable ABI (see README "ABI strategy").
    assert _native.__file__.endswith(".abi3.so"), _native.__file__
    assert sys.version_info >= (3, 10)
