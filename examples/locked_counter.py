"""A counter guarded by a module-level lock made at import time: correct, and frontrun agrees.

    python -m frontrun.rewrite examples/locked_counter.py

The lock exists before the exploration starts, so it is a real ``_thread`` lock; frontrun sees
``with _lock:`` and treats it as an engine lock, so no explored thread ever blocks on it in C.
"""

import sys
import threading

from frontrun import explore_dpor

_lock = threading.Lock()
hits = 0


def record_hit(_state):
    global hits
    with _lock:
        hits += 1


def setup():
    global hits
    hits = 0
    return None


def counted_every_hit(_state):
    return hits == 3


def main():
    result = explore_dpor(setup=setup, threads=[record_hit] * 3, invariant=counted_every_hit)
    print(f"explored {result.num_explored} interleavings")
    if result.property_holds:
        print("no race: the invariant holds in every interleaving")
        return 0
    print(result.explanation)
    return 1


if __name__ == "__main__":
    sys.exit(main())
