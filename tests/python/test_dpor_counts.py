"""Exact execution counts: one execution per Mazurkiewicz trace of the reported accesses.

Every program goes through the real rewriter; each source line is chosen so that the events it
reports are unambiguous (``s.x = 1`` is one attr_store, ``v = s.x`` one attr_load).
"""

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load  # noqa: E402

import frontrun  # noqa: E402

PROG = load(
    """
    import threading

    def three_writes(s):
        s.x = 1
        s.x = 2
        s.x = 3

    def one_write(s):
        s.x = 1

    def x_then_y(s):
        s.x = 1
        s.y = 1

    def y_then_x(s):
        s.y = 2
        s.x = 2

    def reader(s):
        v = s.x

    def read_then_write(s):
        v = s.x
        s.x = v + 1

    def write_a(s):
        s.a = 1
        s.a = 2

    def write_b(s):
        s.b = 1
        s.b = 2

    def two_sections(s):
        with s.lock:
            s.x = 1
        with s.lock:
            s.x = 2
    """
)


def count(threads, setup=lambda: State(x=0, y=0), invariant=lambda s: True, **kw):
    result = frontrun.explore_dpor(setup, threads, invariant, **kw)
    assert result.property_holds is True, result.inconclusive_reason
    assert result.failure_kind is None and result.inconclusive_reason is None
    return result.num_explored


def test_two_threads_three_writes_each():
    assert count([PROG.three_writes, PROG.three_writes]) == 20


def test_three_threads_one_write_each():
    assert count([PROG.one_write] * 3) == 6


def test_opposite_write_orders():
    assert count([PROG.x_then_y, PROG.y_then_x]) == 3


@pytest.mark.parametrize("readers", range(1, 7))
def test_one_writer_n_readers(readers):
    assert count([PROG.one_write] + [PROG.reader] * readers) == 2**readers


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_read_then_write(threads):
    assert count([PROG.read_then_write] * threads) == math.factorial(threads) ** 2


def test_disjoint_attributes():
    assert count([PROG.write_a, PROG.write_b]) == 1


def test_lock_protected_sections_every_order():
    import threading

    # Two critical sections per thread: the orders of four sections, two from each thread.
    assert count([PROG.two_sections] * 2, setup=lambda: State(x=0, lock=threading.Lock())) == 6


def test_lock_protected_sections_three_threads():
    import threading

    # 6 sections, 2 per thread: 6! / (2!^3) orders.
    assert count([PROG.two_sections] * 3, setup=lambda: State(x=0, lock=threading.Lock())) == 90


def test_result_fields_on_pass():
    result = frontrun.explore_dpor(lambda: State(x=0), [PROG.one_write] * 2, lambda s: True)
    assert result.property_holds is True
    assert result.num_explored == 2
    assert result.failure_kind is None and result.counterexample is None
    assert result.explanation == ""
    assert bool(result)

