"""A bounded buffer whose consumers wait with ``if`` instead of ``while``.

    python -m frontrun.rewrite examples/producer_consumer.py

A consumer that was notified re-checks nothing: if another consumer took the item between the
notify and its wake-up, it pops from an empty list. frontrun finds that schedule; the fixed
version (``while``) passes.
"""

import sys
import threading

from frontrun import explore_dpor


class Buffer:
    def __init__(self):
        self.items = []
        self.cond = threading.Condition()
        self.taken = []

    def put(self, item):
        with self.cond:
            self.items.append(item)
            self.cond.notify()

    def take_buggy(self):
        with self.cond:
            if not self.items:
                self.cond.wait()
            self.taken.append(self.items.pop())

    def take(self):
        with self.cond:
            while not self.items:
                self.cond.wait()
            self.taken.append(self.items.pop())


def producer(buf):
    buf.put("job")


def buggy_consumer(buf):
    buf.take_buggy()


def consumer(buf):
    buf.take()


def all_jobs_taken(buf):
    return sorted(buf.taken) == ["job", "job"] and buf.items == []


def main():
    for name, take in (("if", buggy_consumer), ("while", consumer)):
        result = explore_dpor(setup=Buffer, threads=[take, take, producer, producer], invariant=all_jobs_taken)
        print(f"consumers waiting with {name!r}: explored {result.num_explored} interleavings")
        if result.property_holds:
            print("  no failure: the invariant holds in every interleaving")
        else:
            print(result.explanation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
