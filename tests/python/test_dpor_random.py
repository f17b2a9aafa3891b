"""`random` is seeded afresh for every execution (and every replay), so a program whose
accesses depend on random numbers explores the same way each time, replays exactly, and the
caller's random state is as it was afterwards."""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load  # noqa: E402

import frontrun  # noqa: E402

PROG = load(
    """
    import random

    def pick(s):
        for _ in range(3):
            k = random.randrange(3)
            if k == 0:
                s.a += 1
            elif k == 1:
                s.b += 1
            else:
                s.c.append(random.random())
    """
)


def setup():
    return State(a=0, b=0, c=[])


def explore():
    return frontrun.explore_dpor(setup=setup, threads=[PROG.pick] * 3, invariant=lambda s: s.a + s.b + len(s.c) == 9,
                                 stop_on_first=False)


def test_random_program_explores_the_same_way_every_time():
    random.seed(7)
    expected_next = random.random()
    random.seed(7)
    first = explore()
    assert random.random() == expected_next  # the caller's state is restored
    second = explore()
    assert first.inconclusive_reason is None, first.inconclusive_reason
    assert first.property_holds is False  # lost updates of a or b
    assert (first.num_explored, first.stats["failing_executions"]) == (second.num_explored,
                                                                        second.stats["failing_executions"])
    assert first.counterexample == second.counterexample
    replayed = frontrun.replay(first.counterexample, setup, [PROG.pick] * 3,
                               lambda s: s.a + s.b + len(s.c) == 9)
    assert replayed.property_holds is False


STRIPED = load(
    """
    import threading
    import uuid

    class Striped:
        def __init__(self):
            self.locks = [threading.Lock() for _ in range(4)]
            self.data = {}
            self.keys = sorted(uuid.uuid4().hex for _ in range(2))

        def bump(self, k):
            with self.locks[hash(k) % 4]:  # a lock picked by the key's value
                self.data[k] = self.data.get(k, 0) + 1

    def forwards(s):
        for k in s.keys:
            s.bump(k)

    def backwards(s):
        for k in reversed(s.keys):
            s.bump(k)
    """
)


def test_uuid4_starts_afresh_in_every_execution():
    """uuids setup() makes pick the order and the locks: with fresh uuids every execution took
    other steps, and the search stopped as nondeterministic."""
    import uuid

    result = frontrun.explore_dpor(STRIPED.Striped, [STRIPED.forwards, STRIPED.backwards],
                                   lambda s: sorted(s.data.values()) == [2, 2])
    assert result.property_holds is True, result.inconclusive_reason
    assert result.num_explored >= 2
    # Outside an exploration uuid4() is the real one again.
    assert uuid.uuid4() != uuid.uuid4() and uuid.uuid4.__module__ == "uuid"


LOGGED = load(
    """
    import io
    import logging
    import uuid

    class Service:
        def __init__(self):
            self.out = io.StringIO()
            self.log = logging.getLogger(f"service.{uuid.uuid4().hex}")  # its own, it expects
            self.log.propagate = False
            self.log.addHandler(logging.StreamHandler(self.out))

    def work(s):
        s.log.warning("done")
    """
)


def test_a_logger_named_by_a_uuid_is_made_afresh_in_every_execution():
    """uuid4() gives the same values in every execution, so a logger named by one would be the
    last execution's, with its handler too: the loggers an execution made are forgotten."""
    import logging

    kept = logging.getLogger("made.before.the.exploration")
    result = frontrun.explore_dpor(LOGGED.Service, [LOGGED.work] * 2,
                                   lambda s: s.out.getvalue() == "done\ndone\n" and len(s.log.handlers) == 1)
    assert result.property_holds is True, result.inconclusive_reason or result.explanation
    assert logging.getLogger("made.before.the.exploration") is kept
