"""``select.select``, ``select.poll()`` / ``select.epoll()`` objects and selectors in explored
threads. A server that waits in one for its client, another explored thread, waited for real: it
blocked the exploration (the client only runs once the server reaches a scheduling point), or,
in a selector, waited ``OUTSIDE_WAIT`` seconds of real time each execution (the client's connect
woke only blocking accepts and reads). They wait in the model now, woken by the client's
writes, and time out on the modelled clock when nothing else can run."""

import select
import selectors
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load  # noqa: E402

import frontrun  # noqa: E402
from frontrun import _coop  # noqa: E402

PROGRAM_SOURCE = """
    import asyncio
    import select
    import selectors
    import socket
    import time
    from select import select as select_by_its_own_name

    def reply(s, conn):
        with conn:
            s.count += 1
            conn.sendall(conn.recv(100).upper())

    def serve_with_select(s):
        ready, _, _ = select.select([s.server], [], [])
        assert ready == [s.server]
        conn, _ = s.server.accept()
        assert select.select([conn], [], [])[0] == [conn]
        reply(s, conn)

    def serve_with_select_imported_by_name(s):
        assert select_by_its_own_name([s.server], [], [])[0] == [s.server]
        reply(s, s.server.accept()[0])

    def serve_with_poll(s):
        poller = select.poll()
        poller.register(s.server, select.POLLIN)
        assert poller.poll() == [(s.server.fileno(), select.POLLIN)]
        conn, _ = s.server.accept()
        poller.unregister(s.server)
        poller.register(conn, select.POLLOUT)
        poller.modify(conn, select.POLLIN)
        assert poller.poll(-1) == [(conn.fileno(), select.POLLIN)]
        reply(s, conn)

    def serve_with_epoll(s):
        with select.epoll() as poller:
            poller.register(s.server, select.EPOLLIN)
            assert poller.poll() == [(s.server.fileno(), select.EPOLLIN)]
            conn, _ = s.server.accept()
            poller.register(conn, select.EPOLLIN)
            assert poller.poll(timeout=-1, maxevents=1) == [(conn.fileno(), select.EPOLLIN)]
            reply(s, conn)

    def serve_with_a_selector(s):
        with getattr(selectors, s.selector_class)() as selector:
            s.inner = getattr(selector, "_selector", None)
            selector.register(s.server, selectors.EVENT_READ)
            assert [key.fileobj for key, _ in selector.select()] == [s.server]
            conn, _ = s.server.accept()
            selector.unregister(s.server)
            selector.register(conn, selectors.EVENT_READ)
            assert [key.fileobj for key, _ in selector.select()] == [conn]
            reply(s, conn)

    def serve_non_blocking_with_a_selector(s):
        # As the selectors documentation's echo server: the listening socket does not block.
        s.server.setblocking(False)
        with getattr(selectors, s.selector_class)() as selector:
            selector.register(s.server, selectors.EVENT_READ)
            selector.select()
            conn, _ = s.server.accept()
            conn.setblocking(True)
            reply(s, conn)

    def serve_counting_on_accept(s):
        if s.how == "select":
            select.select([s.server], [], [])
        elif s.how == "poll":
            poller = select.poll()
            poller.register(s.server, select.POLLIN)
            poller.poll()
        else:
            with selectors.DefaultSelector() as selector:
                selector.register(s.server, selectors.EVENT_READ)
                selector.select()
        reply(s, s.server.accept()[0])

    def ask(s):
        with socket.create_connection(s.address) as c:
            c.sendall(b"hi")
            s.reply = c.recv(100)
        s.count += 1

    def count_once_connected(s):
        with socket.create_connection(s.address) as c:
            s.count += 1  # unordered with the server's: both only follow the connect
            c.sendall(b"hi")
            s.reply = c.recv(100)

    def connect(s):
        s.client = socket.create_connection(s.address)

    def look_once_with_select(s):
        s.seen = select.select([s.server], [], [], 0)[0] == [s.server]

    def look_once_with_poll(s):
        poller = select.poll()
        poller.register(s.server, select.POLLIN)
        s.seen = poller.poll(0) != []

    def wait_with_select_for_no_one(s):
        began = time.monotonic()
        s.reply = select.select([s.server], [], [], 5)
        s.waited = time.monotonic() - began

    def wait_with_poll_for_no_one(s):
        poller = select.poll()
        poller.register(s.server, select.POLLIN)
        began = time.monotonic()
        s.reply = poller.poll(5000)
        s.waited = time.monotonic() - began

    def wait_with_epoll_for_no_one(s):
        with select.epoll() as poller:
            # Edge-triggered: a look takes what it finds, so every write wakes the waiter to look.
            poller.register(s.server, select.EPOLLIN | select.EPOLLET)
            began = time.monotonic()
            s.reply = poller.poll(5)
            s.waited = time.monotonic() - began

    def wait_with_a_selector_for_no_one(s):
        with selectors.DefaultSelector() as selector:
            selector.register(s.server, selectors.EVENT_READ)
            began = time.monotonic()
            s.reply = selector.select(5)
            s.waited = time.monotonic() - began

    def chatter(s):
        # Blocking writes, none of them to the server: each wakes its waiter, which waits on.
        a, b = socket.socketpair()
        with a, b:
            for _ in range(3):
                time.sleep(2)
                a.sendall(b"x")

    def run_a_loop(s):
        async def main():
            for _ in range(3):
                await asyncio.sleep(0)
            s.loops += 1

        asyncio.run(main())

    def keep_a_poller(s):
        s.poller = select.poll()
        s.poller.register(s.server, select.POLLIN)

    def bump(s):
        s.n += 1

    def refuse_bad_timeouts(s):
        r, w = socket.socketpair()
        with r, w:
            for bad in (lambda: select.select([r], [], [], -1), lambda: select.select([r], [], [], "1"),
                        lambda: select.poll().poll("1")):
                try:
                    bad()
                except (ValueError, TypeError) as e:
                    s.errors.append(type(e).__name__)
"""
PROG = load(PROGRAM_SOURCE, name="dpor_select_prog")

HAS_EPOLL = hasattr(select, "epoll")


def socket_setup():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return State(server=server, address=server.getsockname(), count=0, reply=None, seen=None, n=0, inner=None,
                 selector_class="DefaultSelector")


@pytest.fixture(params=[False, True], ids=["", "selectors-rewritten"])
def stdlib_rewritten(request):
    return request.param


@pytest.fixture
def no_outside_waits(monkeypatch):
    """A look that waited for the outside world would take this long, each time: the search ends
    well before it unless none does."""
    monkeypatch.setattr(_coop, "OUTSIDE_WAIT", 30.0)
    began = time.monotonic()
    yield
    assert time.monotonic() - began < 15, "a look waited for the outside world"


SERVERS = ["serve_with_select", "serve_with_select_imported_by_name", "serve_with_poll", "serve_with_a_selector",
           "serve_non_blocking_with_a_selector"] + (["serve_with_epoll"] if HAS_EPOLL else [])


@pytest.mark.parametrize("server", SERVERS)
def test_a_server_waiting_in_select_is_woken_by_its_client(server, no_outside_waits):
    # Whichever thread runs first, the exchange completes; the counts are ordered by it.
    result = frontrun.explore_dpor(socket_setup, [getattr(PROG, server), PROG.ask],
                                   lambda s: s.reply == b"HI" and s.count == 2, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.stats["complete"] and result.num_explored > 1


SELECTOR_CLASSES = [name for name in ("SelectSelector", "PollSelector", "EpollSelector") if hasattr(selectors, name)]


@pytest.mark.parametrize("selector_class", SELECTOR_CLASSES)
def test_each_selector_waits_once_in_the_model(selector_class, no_outside_waits, monkeypatch, stdlib_rewritten):
    # PollSelector and EpollSelector made their poll objects with the originals bound at import:
    # not wrapped, so their select waits in the model once, not twice. Also when selectors itself
    # was rewritten (an include pattern of `*`): its classes' `_selector_cls = select.poll` was
    # taken for a program's class attribute and replaced, and the select deadlocked.
    if stdlib_rewritten:
        rewritten = _coop._native.is_rewritten_file
        monkeypatch.setattr(_coop._native, "is_rewritten_file",
                            lambda file: file == selectors.__file__ or rewritten(file))
    inner = []

    def setup():
        s = socket_setup()
        s.selector_class = selector_class
        return s

    def check(s):
        inner.append(s.inner)
        return s.reply == b"HI" and s.count == 2

    result = frontrun.explore_dpor(setup, [PROG.serve_with_a_selector, PROG.ask], check, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert inner and not any(isinstance(i, _coop._Poll) for i in inner)


@pytest.mark.parametrize("how", ["select", "poll", "selector"])
def test_counts_the_exchange_does_not_order_race(how, no_outside_waits):
    def setup():
        s = socket_setup()
        s.how = how
        return s

    result = frontrun.explore_dpor(setup, [PROG.serve_counting_on_accept, PROG.count_once_connected],
                                   lambda s: s.count == 2, timeout=60)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert "Race on State.count" in result.explanation


@pytest.mark.parametrize("look", ["look_once_with_select", "look_once_with_poll"])
def test_a_look_without_waiting_is_ordered_against_the_connect(look, no_outside_waits):
    # A timeout of 0 does not wait, but looks under the I/O lock: the search tries the look
    # both before the client's connect (nothing ready) and after it (the listener ready).
    threads = [getattr(PROG, look), PROG.connect]
    saw = frontrun.explore_dpor(socket_setup, threads, lambda s: s.seen is True, timeout=60)
    assert saw.property_holds is False and saw.failure_kind == "invariant", saw.inconclusive_reason
    missed = frontrun.explore_dpor(socket_setup, threads, lambda s: s.seen is False, timeout=60)
    assert missed.property_holds is False and missed.failure_kind == "invariant", missed.inconclusive_reason


NO_ONE = {
    "wait_with_select_for_no_one": ([], [], []),
    "wait_with_poll_for_no_one": [],
    "wait_with_a_selector_for_no_one": [],
}
if HAS_EPOLL:
    NO_ONE["wait_with_epoll_for_no_one"] = []


@pytest.mark.parametrize("waiter", sorted(NO_ONE))
@pytest.mark.parametrize("beside", ["bump", "chatter"])
def test_a_wait_with_a_timeout_times_out_on_the_modelled_clock(waiter, beside, no_outside_waits):
    # Its 5 s pass on the modelled clock once nothing else can run, not in real time. Writes that
    # make nothing it waits for ready do not wake it, or (the edge-triggered epoll's) wake it
    # without starting its timeout over.
    waited = []

    def check(s):
        waited.append(s.waited)
        return s.reply == NO_ONE[waiter]

    began = time.monotonic()
    result = frontrun.explore_dpor(socket_setup, [getattr(PROG, waiter), getattr(PROG, beside)], check, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    # (Started after some of the chatter's writes, in some schedules: the clock had moved on.)
    assert waited and 5 <= min(waited) < 5.1 and max(waited) < 11.1, sorted(set(waited))
    if beside == "bump":
        assert max(waited) < 5.1, sorted(set(waited))
    assert time.monotonic() - began < 5


@pytest.mark.skipif(not HAS_EPOLL, reason="select.epoll is Linux-only")
def test_writes_that_make_nothing_ready_wake_no_one():
    # A waiter woken by every write looks again after each, and its looks, ordered against the
    # writes, multiply the schedules. Only the edge-triggered epoll's waiter is (no one else can
    # look for it: a look takes the event).
    level = frontrun.explore_dpor(socket_setup, [PROG.wait_with_poll_for_no_one, PROG.chatter], timeout=60)
    edge = frontrun.explore_dpor(socket_setup, [PROG.wait_with_epoll_for_no_one, PROG.chatter], timeout=60)
    assert level.property_holds is True and edge.property_holds is True
    assert level.stats["complete"] and edge.stats["complete"]
    assert level.num_explored < edge.num_explored, (level.num_explored, edge.num_explored)


def test_event_loops_in_two_threads_are_not_ordered_against_each_other():
    # Each loop's selector waits on a lock of its own (its call_soon_threadsafe's). Under the one
    # all other I/O shares, every select of one loop was ordered against every select of the
    # other: tens of thousands of executions (a few here: asyncio's own shared state).
    setup = lambda: State(loops=0)  # noqa: E731
    PROG.run_a_loop(setup())  # (asyncio's set-up, once per process, outside the search)
    result = frontrun.explore_dpor(setup, [PROG.run_a_loop, PROG.run_a_loop], lambda s: s.loops >= 1, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.num_explored <= 10, result.num_explored


def test_select_is_itself_again_after_the_search():
    originals = (select.select, select.poll, getattr(select, "epoll", None))
    kept = []

    def check(s):
        kept.append(s.poller)
        return True

    result = frontrun.explore_dpor(socket_setup, [PROG.keep_a_poller, PROG.bump], check, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert (select.select, select.poll, getattr(select, "epoll", None)) == originals
    assert PROG.select_by_its_own_name is originals[0]
    # A poll object made in the search, used after it, waits in real time as the original does.
    a, b = socket.socketpair()
    with a, b:
        poller = kept[-1]
        poller.register(a, select.POLLIN)
        began = time.monotonic()
        assert poller.poll(50) == []
        assert time.monotonic() - began >= 0.04
        b.sendall(b"x")
        assert poller.poll(1000) == [(a.fileno(), select.POLLIN)]
        assert select.select([a], [], [], 1) == ([a], [], [])


def test_setup_and_the_invariant_see_the_originals_behaviour():
    # Outside explored threads a select waits for real (here not at all: something is ready).
    def setup():
        s = socket_setup()
        s.pair = socket.socketpair()
        s.pair[1].sendall(b"x")
        s.in_setup = select.select(iter([s.pair[0]]), [], [], 5)
        poller = select.poll()
        poller.register(s.pair[0], select.POLLIN)
        s.polled = poller.poll()
        return s

    def check(s):
        assert select.select([s.pair[0]], [], [], 5) == ([s.pair[0]], [], [])
        return s.in_setup == ([s.pair[0]], [], []) and s.polled == [(s.pair[0].fileno(), select.POLLIN)]

    result = frontrun.explore_dpor(setup, [PROG.bump, PROG.bump], check, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


def test_timeouts_the_original_refuses_are_refused_in_explored_threads():
    result = frontrun.explore_dpor(lambda: State(errors=[]), [PROG.refuse_bad_timeouts],
                                   lambda s: s.errors == ["ValueError", "TypeError", "TypeError"], timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
