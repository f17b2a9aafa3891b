"""I/O between explored threads. An event loop that waits in its selector for another explored thread
(``run_coroutine_threadsafe``, ``asyncio.to_thread``) is woken by that thread's
``call_soon_threadsafe`` in the model; a real blocking select would wait for a thread that only
runs once the loop reaches a scheduling point (the search hung until its timeout). The same
goes for ``multiprocessing.pool.ThreadPool``, whose result handler polls a pipe, and for a
server thread blocked in ``accept()``/``recv()`` while its client, another explored thread, has
not run yet."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load, run_in_new_process  # noqa: E402

import frontrun  # noqa: E402
from frontrun import _coop  # noqa: E402

PROGRAM_SOURCE = """
    import asyncio
    import subprocess
    import sys
    import threading
    # Imported before the search: an import inside a thread runs only in the first execution.
    from multiprocessing.pool import ThreadPool

    async def bump(s):
        v = s.n
        await asyncio.sleep(0)
        s.n = v + 1

    def bump_plain(s):
        s.n += 1

    def bump_hits(s):
        s.hits += 1

    def start_loop(s, daemon=False):
        s.loop = asyncio.new_event_loop()
        s.thread = threading.Thread(target=s.loop.run_forever, daemon=daemon)
        s.thread.start()

    def stop_loop(s):
        s.loop.call_soon_threadsafe(s.loop.stop)
        s.thread.join()
        s.loop.close()

    def submit_and_stop(s):
        start_loop(s)
        asyncio.run_coroutine_threadsafe(bump(s), s.loop).result()
        stop_loop(s)

    def submit_to_a_loop_left_running(s):
        start_loop(s, daemon=True)
        asyncio.run_coroutine_threadsafe(bump(s), s.loop).result()

    def submit_beside_a_plain_writer(s):
        start_loop(s)
        writer = threading.Thread(target=bump_plain, args=(s,))
        writer.start()
        asyncio.run_coroutine_threadsafe(bump(s), s.loop).result()
        writer.join()
        stop_loop(s)

    def two_to_thread(s):
        async def main():
            await asyncio.gather(asyncio.to_thread(bump_plain, s), asyncio.to_thread(bump_plain, s))
        asyncio.run(main())

    def thread_pool_map(s):
        with ThreadPool(2) as pool:
            pool.map(lambda _: bump_plain(s), range(2))

    def thread_pool_map_in_two_steps(s):
        def bump(_):
            n = s.n
            s.n = n + 1
        with ThreadPool(2) as pool:
            pool.map(bump, range(2))

    def thread_pool_locked(s, workers, tasks):
        def bump(_):
            with s.lock:
                s.n += 1
        pool = ThreadPool(workers)
        pool.map(bump, range(tasks))
        pool.close()
        pool.join()
        s.pool = pool

    def serve_once(s):
        conn, _ = s.server.accept()
        with conn:
            s.count += 1
            line = conn.makefile("rb").readline()
            conn.sendall(line.upper())

    def serve_once_patiently(s):
        s.server.settimeout(30)
        conn, _ = s.server.accept()
        with conn:
            conn.settimeout(30)
            s.count += 1
            conn.sendall(conn.recv(100).upper())

    def ask(s):
        import socket

        with socket.create_connection(s.address) as c:
            c.sendall(b"hi\\n")
            s.reply = c.recv(100)
        s.count += 1

    def count_once_connected(s):
        import socket

        with socket.create_connection(s.address) as c:
            s.count += 1  # unordered with the server's: both only follow the connect
            c.sendall(b"hi\\n")
            s.reply = c.recv(100)

    def wait_for_nothing(s):
        s.server.settimeout(0.05)
        try:
            s.server.accept()
        except TimeoutError:
            s.reply = "timed out"

    def fetch(s):
        import urllib.request

        with urllib.request.urlopen(s.url, timeout=5) as reply:
            s.got.append(reply.read())

    def wait_long(s):
        if not s.event.wait(5):
            s.order.append("long")

    def wait_short(s):
        if not s.event.wait(0.1):
            s.order.append("short")

    def fork_a_worker(s):
        import multiprocessing

        def work():
            # Threading in the child is the real one: it is not explored.
            lock = threading.Lock()
            with lock:
                event = threading.Event()
                event.set()
            sys.exit(0 if event.wait(1) else 3)

        child = multiprocessing.get_context("fork").Process(target=work)
        child.start()
        child.join()
        s.out = child.exitcode

    def run_a_child_process(s):
        done = subprocess.run([sys.executable, "-c", "print('hi')"], capture_output=True, text=True)
        s.out = done.stdout

    NAP = [sys.executable, "-c", "import time; time.sleep(0.2)"]

    def child_then_count(s):
        subprocess.run(NAP, timeout=30)  # waits with naps between polls
        s.n += 1

    def child_then_stuck(s):
        child = subprocess.Popen(NAP)
        s.lock.acquire()
        s.lock.acquire()  # never: the execution ends in a deadlock, and unwinds this thread

    def piped_child_then_count(s):
        subprocess.run(NAP, timeout=30, capture_output=True)  # waits in a selector, then polls
        s.n += 1
"""
PROG = load(PROGRAM_SOURCE, name="dpor_asyncio_prog")


def setup():
    return State(n=0, out=None)


def test_a_coroutine_submitted_from_another_thread_runs_on_the_loop():
    result = frontrun.explore_dpor(setup, [PROG.submit_and_stop], lambda s: s.n == 1, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


def test_a_coroutine_races_a_plain_thread():
    result = frontrun.explore_dpor(setup, [PROG.submit_beside_a_plain_writer], lambda s: s.n == 2, timeout=60)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert "Race on State.n" in result.explanation


def test_a_pools_own_race_is_told_after_the_programs():
    PROG.thread_pool_map(State(n=0))
    result = frontrun.explore_dpor(setup, [PROG.thread_pool_map_in_two_steps], lambda s: s.n == 2, timeout=120)
    assert result.failure_kind == "invariant", result.inconclusive_reason
    # The program's race heads the report; the pool's own (its handlers' `_state`), in
    # multiprocessing's code alone, is a line after it, not a race of its own.
    lines = result.explanation.splitlines()
    assert lines[0].startswith("Race on State.n"), result.explanation
    assert [line for line in lines if line.startswith("Race on")] == [lines[0]], result.explanation
    assert any(line.startswith("Also ") and "inside multiprocessing/pool.py" in line for line in lines), \
        result.explanation


def test_to_thread_workers_race():
    result = frontrun.explore_dpor(setup, [PROG.two_to_thread], lambda s: s.n == 2, timeout=120)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert "Race on State.n" in result.explanation


def test_a_daemon_loop_no_one_stops_ends_with_the_execution(monkeypatch):
    # Only background threads are left: nothing outside is waited for (with the wait this long,
    # the first execution alone would outlast the budget).
    monkeypatch.setattr(_coop, "OUTSIDE_WAIT", 60.0)
    result = frontrun.explore_dpor(setup, [PROG.submit_to_a_loop_left_running], lambda s: s.n == 1, timeout=30)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


def test_a_child_process_is_waited_for():
    # subprocess waits in a selector for a process outside the program: when nothing in the
    # program can run, the select waits for real.
    result = frontrun.explore_dpor(setup, [PROG.run_a_child_process, PROG.bump_plain], lambda s: s.out == "hi\n",
                                   timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


@pytest.mark.parametrize("child", ["child_then_count", "piped_child_then_count"])
def test_threads_waiting_for_children_are_explored_to_the_end(child):
    # How often a wait for a child polls is the child's timing: made scheduling points, the
    # polls (and naps on the modelled clock, which timed the child out at once) made every
    # execution differ ("nondeterminism"). They wait for real; the race after them is found.
    threads = [getattr(PROG, child)] * 2
    result = frontrun.explore_dpor(setup, threads, lambda s: s.n == 2, timeout=120)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert "Race on State.n" in result.explanation
    held = frontrun.explore_dpor(setup, threads, lambda s: s.n >= 1, timeout=120)
    assert held.property_holds is True, held.inconclusive_reason


def test_a_finalizer_cut_short_by_an_abort_is_not_reported(monkeypatch):
    # An execution ended early unwinds its threads; a Popen they dropped is finalized then, and
    # its __del__ polls the child under a cooperative lock, which the abort ends too: that is
    # frontrun's doing, not the program's: no "Exception ignored in ..." (pytest: a warning).
    import threading

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    result = frontrun.explore_dpor(lambda: State(lock=threading.Lock(), n=0), [PROG.child_then_stuck], timeout=120)
    assert result.failure_kind == "deadlock"
    assert [u.exc_value for u in unraisable] == []


def test_thread_pool_workers_race():
    # A first pool outside the search: on 3.14+ the first one starts multiprocessing's resource
    # tracker, state that outlives an execution.
    PROG.thread_pool_map(State(n=0))
    result = frontrun.explore_dpor(setup, [PROG.thread_pool_map], lambda s: s.n == 2, timeout=120)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert "Race on State.n" in result.explanation


def locked_setup():
    return State(n=0, lock=threading.Lock())


@pytest.mark.parametrize("tasks", [1, 2])
def test_a_correct_program_over_a_thread_pool_passes(tasks):
    # The pool's worker handler slept on a pipe that only real time woke it from: the search
    # could not repeat its schedules and stopped on "nondeterminism".
    PROG.thread_pool_map(State(n=0))  # (3.14+: the first pool of a process sets multiprocessing up)
    result = frontrun.explore_dpor(locked_setup, [lambda s: PROG.thread_pool_locked(s, 1, tasks)],
                                   lambda s: s.n == tasks, timeout=120)
    assert result.property_holds is True, result.inconclusive_reason
    assert result.num_explored > 1


def test_a_correct_program_over_two_pool_workers_passes():
    # The pool's result queue was numbered by its first use, which either worker could make:
    # at the put the plan named another queue, and the search stopped on "nondeterminism"
    # after some 600 executions. Queues, events and semaphores are named by their maker now.
    PROG.thread_pool_map(State(n=0))
    result = frontrun.explore_dpor(locked_setup, [lambda s: PROG.thread_pool_locked(s, 2, 2)],
                                   lambda s: s.n == 2, timeout=300)
    assert result.property_holds is True, result.inconclusive_reason
    assert result.stats["complete"] and result.num_explored > 1


def test_a_thread_pool_of_an_exploration_is_over_with_it(tmp_path):
    # After the search, its pools' threads look finished, and multiprocessing's exit handler
    # no longer terminates the pools again (it failed: "cannot join thread before it is
    # started", "Cannot have cache with result_handler not alive").
    script = """
        import threading
        seen = []
        P.thread_pool_map(State(n=0))
        def check(s):
            seen.append(s.pool)
            return s.n == 2
        r = frontrun.explore_dpor(lambda: State(n=0, lock=threading.Lock()),
                                  [lambda s: P.thread_pool_locked(s, 2, 2)], check, max_executions=5)
        handlers = [seen[-1]._worker_handler, seen[-1]._task_handler, seen[-1]._result_handler]
        for t in handlers:
            t.join()
        print(r.property_holds is not False, [t.is_alive() for t in handlers])
    """
    done = run_in_new_process(tmp_path, PROGRAM_SOURCE, script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "[False,", "False,", "False]"]
    assert done.stderr == ""


def socket_setup():
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return State(server=server, address=server.getsockname(), count=0, reply=None, n=0)


def test_a_server_thread_waits_for_its_client():
    # Whichever thread runs first, the exchange completes; the counts are ordered by it.
    result = frontrun.explore_dpor(socket_setup, [PROG.serve_once, PROG.ask],
                                   lambda s: s.reply == b"HI\n" and s.count == 2, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.num_explored > 1
    # Proved by the full search, after the bounded ones (their executions are counted apart).
    assert result.stats["bounded_first"] > 0 and result.stats["complete"]


def test_counts_the_exchange_does_not_order_race():
    result = frontrun.explore_dpor(socket_setup, [PROG.serve_once, PROG.count_once_connected],
                                   lambda s: s.count == 2, timeout=60)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert "Race on State.count" in result.explanation


def test_an_accept_with_a_timeout_times_out():
    result = frontrun.explore_dpor(socket_setup, [PROG.wait_for_nothing, PROG.bump_plain],
                                   lambda s: s.reply == "timed out", timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


def http_setup():
    import http.server
    import threading

    state = State(hits=0, got=[])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            PROG.bump_hits(state)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/"
    return state


def test_a_threading_http_server_and_its_clients():
    # The server polls for requests in a daemon thread setup() starts: once the clients are done,
    # it is waiting, and the execution ends (it used to poll until the step limit). The handler
    # threads' unlocked count is found: by the search with one preemption, which comes first (the
    # full search had not found it after 46,000 executions).
    result = frontrun.explore_dpor(http_setup, [PROG.fetch, PROG.fetch],
                                   lambda s: s.got == [b"ok", b"ok"] and s.hits == 2, timeout=120)
    assert result.property_holds is False and result.failure_kind == "invariant", result.inconclusive_reason
    assert "Race on State.hits" in result.explanation


def test_socket_timeouts_fire_only_when_stuck_even_with_early_timeouts():
    # timeouts="any_time" leaves sockets and selectors alone: a real call follows their look,
    # which would otherwise wait in real time for a client parked by the model, then time out.
    result = frontrun.explore_dpor(socket_setup, [PROG.serve_once_patiently, PROG.ask],
                                   lambda s: s.reply == b"HI\n" and s.count == 2, timeout=60, timeouts="any_time")
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


def test_the_earliest_deadline_times_out_first():
    import threading

    setup = lambda: State(event=threading.Event(), order=[])  # noqa: E731
    result = frontrun.explore_dpor(setup, [PROG.wait_long, PROG.wait_short], lambda s: s.order == ["short", "long"])
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork() in a process with threads
def test_a_process_forked_by_an_explored_thread_is_not_explored():
    # It used to crash in the child: threading's after-fork hook took a cooperative lock, whose
    # runtime only the parent has.
    result = frontrun.explore_dpor(setup, [PROG.fork_a_worker, PROG.bump_plain], lambda s: s.out == 0, timeout=60)
    assert result.property_holds is True, result.explanation or result.inconclusive_reason


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_fork_between_explorations_has_no_worker_threads(tmp_path):
    """The runtime's idle workers are sent home before `os.fork()`, so 3.12+ does not warn
    about forking a process with threads (a multiprocessing pool under `-W error`), and the
    next exploration starts new ones. In a fresh interpreter: other tests leave threads."""
    script = tmp_path / "forks.py"
    script.write_text(textwrap.dedent(
        """
        import os, warnings
        import frontrun

        class Counter:
            def __init__(self):
                self.n = 0

        def bump(c):
            c.n += 1

        def explore():
            return frontrun.explore_dpor(Counter, [bump, bump], lambda c: c.n == 2)

        first = explore()
        assert first.property_holds is False and first.num_explored == 2, first
        assert len(os.listdir("/proc/self/task")) > 1  # the workers wait for the next one
        warnings.simplefilter("error")
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(os.listdir("/proc/self/task")) == 1
        again = explore()
        assert again.property_holds is False and again.num_explored == 2, again
        print("ok")
        """
    ))
    done = subprocess.run([sys.executable, "-m", "frontrun.rewrite", str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_an_aborted_asyncio_run_leaves_no_noise(tmp_path):
    # A thread inside asyncio.run when its execution is aborted (here the search starts over
    # after the thread's first import of asyncio): asyncio logged "Task exception was never
    # retrieved ... ExecutionAborted" when the task was collected, and warned that its clean-up
    # coroutine was never awaited. Neither is the program's.
    script = tmp_path / "lazy_asyncio.py"
    script.write_text(textwrap.dedent(
        """
        import gc
        import threading
        from frontrun import explore_dpor

        class S:
            def __init__(self):
                self.n = 0
                self.lock = threading.Lock()

        async def work(s):
            import asyncio
            with s.lock:
                s.n += 1
            await asyncio.sleep(0)

        def bump(s):
            import asyncio
            asyncio.run(work(s))

        result = explore_dpor(S, [bump, bump], lambda s: s.n == 2)
        gc.collect()
        assert result.property_holds is not False, result.explanation
        assert result.stats.get("restarts"), result.stats  # an execution was aborted
        print("ok")
        """
    ))
    done = subprocess.run([sys.executable, "-W", "default", "-m", "frontrun.rewrite", str(script)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert done.stderr == ""


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_ctrl_c_stops_a_search_whose_thread_is_blocked_outside_the_model(tmp_path):
    # A read of a pipe no one writes blocks the thread for ever in a call frontrun does not model;
    # the exploring thread waited for it without running the signal handlers, so Ctrl-C did nothing.
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent(
        """
        import os
        import signal
        from frontrun import explore_dpor

        # As in a terminal: a process started in the background of a shell inherits SIGINT
        # ignored, and python then leaves it so.
        signal.signal(signal.SIGINT, signal.default_int_handler)

        class Pipe:
            def __init__(self):
                self.r, self.w = os.pipe()

            def reader(self):
                self.got = os.read(self.r, 1)

            def other(self):
                self.x = 1

        print("exploring", flush=True)
        explore_dpor(Pipe, [Pipe.reader, Pipe.other])
        """
    ))
    proc = subprocess.Popen([sys.executable, "-m", "frontrun.rewrite", str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "exploring"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (-signal.SIGINT, 128 + signal.SIGINT), err
    assert err.rstrip().endswith("KeyboardInterrupt"), err
