"""frontrun: systematic concurrency testing for Python.

Selected modules are rewritten at import time so that their shared-state accesses report
themselves; the DPOR engine in `frontrun._native` explores every meaningfully different
interleaving of the test's threads.
"""

from frontrun import _native

__version__ = _native.__version__
