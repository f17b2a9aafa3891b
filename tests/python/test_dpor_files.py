"""Files are shared resources by path: every handle on a file and every call that names its path
(`open`, `os.path.exists`, `os.replace`, ...) are ordered against each other, so two threads that
each open the same file are seen to share it, and threads on different files are not."""

import io
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load  # noqa: E402

import frontrun  # noqa: E402
from frontrun import _coop  # noqa: E402

PROG = load(
    """
    import os
    import shutil

    class Log:
        def __init__(self, path):
            self.path = path
            open(path, "w").close()

        def append_numbered(self, text):
            with open(self.path) as f:
                n = len(f.readlines())
            with open(self.path, "a") as f:
                f.write(f"{n}:{text}\\n")

    class Claim:
        def __init__(self, path):
            self.path = path
            if os.path.exists(path):
                os.remove(path)
            self.winners = []

        def claim(self, who):
            if not os.path.exists(self.path):
                with open(self.path, "w") as f:
                    f.write(who)
                self.winners.append(who)

        def claim_atomically(self, who):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            self.winners.append(who)

    def publish(path, text):
        tmp = path + "." + text
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def read_all(path, out):
        with open(path) as f:
            out.append(f.read())

    def check_and_read(path, out):
        if os.path.exists(path):
            with open(path, "rb") as f:
                out.append(f.read())

    def check_and_size(path, out):
        if os.path.isfile(path):
            out.append(os.path.getsize(path))

    def size(path, out):
        out.append(os.path.getsize(path))
    """
)

PATHLIB = load(
    """
    from pathlib import Path

    class Claim:
        def __init__(self, path):
            self.path = Path(path)
            if self.path.exists():
                self.path.unlink()
            self.winners = []

        def claim(self, who):
            if not self.path.exists():
                self.path.write_text(who)
                self.winners.append(who)

        def append(self, text):
            n = len(self.path.read_text().splitlines()) if self.path.exists() else 0
            with self.path.open("a") as f:
                f.write(f"{n}:{text}\\n")

    def size(path, out):
        p = Path(path)
        out.append(p.stat().st_size if p.is_file() else None)
    """
)


def numbered(path):
    lines = Path(path).read_text().splitlines()
    return [line.split(":")[0] for line in lines] == [str(i) for i in range(len(lines))]


def test_two_handles_on_one_file_race(tmp_path):
    path = str(tmp_path / "log.txt")
    result = frontrun.explore_dpor(
        setup=lambda: PROG.Log(path),
        threads=[lambda log: log.append_numbered("a"), lambda log: log.append_numbered("b")],
        invariant=lambda log: numbered(log.path),
    )
    assert result.property_holds is False
    assert result.failure_kind == "invariant"
    explanation = result.explanation
    assert f"Race on file {os.path.realpath(path)}" in explanation
    assert "read   " in explanation and "with open(self.path) as f:" in explanation
    assert "f.write(" in explanation
    assert "afterwards file" in explanation and "'0:" in explanation
    replayed = frontrun.replay(result.counterexample, lambda: PROG.Log(path),
                               [lambda log: log.append_numbered("a"), lambda log: log.append_numbered("b")],
                               lambda log: numbered(log.path))
    assert replayed.property_holds is False


@pytest.mark.parametrize("prog, check", [("PROG", "if not os.path.exists(self.path):"),
                                         ("PATHLIB", "if not self.path.exists():")])
def test_check_then_create_by_path_races(tmp_path, prog, check):
    program = globals()[prog]
    path = str(tmp_path / "lock")
    result = frontrun.explore_dpor(
        setup=lambda: program.Claim(path),
        threads=[lambda c: c.claim("a"), lambda c: c.claim("b")],
        invariant=lambda c: len(c.winners) <= 1,
    )
    assert result.property_holds is False
    assert f"Race on file {os.path.realpath(path)}" in result.explanation
    assert check in result.explanation


def test_exclusive_create_is_safe(tmp_path):
    path = str(tmp_path / "lock")
    result = frontrun.explore_dpor(
        setup=lambda: PROG.Claim(path),
        threads=[lambda c: c.claim_atomically("a"), lambda c: c.claim_atomically("b")],
        invariant=lambda c: len(c.winners) == 1,
    )
    assert result.property_holds is True, result.explanation
    assert result.num_explored >= 2  # the two orders of os.open on one path


def test_replace_orders_against_readers(tmp_path):
    path = str(tmp_path / "current")
    Path(path).write_text("old")

    class S:
        def __init__(self):
            Path(path).write_text("old")
            self.seen = []

    result = frontrun.explore_dpor(
        setup=S,
        threads=[lambda s: PROG.publish(path, "new"), lambda s: PROG.read_all(path, s.seen)],
        invariant=lambda s: s.seen == ["new"],
    )
    assert result.property_holds is False  # the reader can run before the replace
    assert result.num_explored == 2


def test_two_replaces_onto_one_path_are_shown_as_its_race(tmp_path):
    # Each move also writes its source and the directory's entries: the explanation showed
    # each thread's move by its own source file, so no race, only "invariant failed".
    path = str(tmp_path / "current")
    result = frontrun.explore_dpor(
        setup=lambda: None,
        threads=[lambda s: PROG.publish(path, "a"), lambda s: PROG.publish(path, "b")],
        invariant=lambda s: Path(path).read_text() == "b",
    )
    assert result.property_holds is False
    lines = result.explanation.splitlines()
    assert lines[0].startswith(f"Race on file {path} "), result.explanation
    moves = [line for line in lines if "os.replace(tmp, path)" in line]
    assert [line.split()[1:3] for line in moves] == [["1", "write"], ["0", "write"]], result.explanation


class FreshStore:
    """A store in a directory of its own, made anew for each execution (as `tempfile.mkdtemp`
    in a test's setup): every path differs from one execution to the next."""

    made = 0

    def __init__(self, root):
        FreshStore.made += 1
        self.path = os.path.join(root, f"run{FreshStore.made}", "data")
        os.makedirs(os.path.dirname(self.path))
        Path(self.path).write_text("0")


FRESH = load(
    """
    import contextlib
    import os
    import threading

    def bump(s, lock):
        with lock or contextlib.nullcontext():
            with open(s.path) as f:
                n = int(f.read())
            tmp = f"{s.path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w") as f:
                f.write(str(n + 1))
            os.replace(tmp, s.path)
    """
)


@pytest.mark.parametrize("locked", [False, True])
def test_atomic_writes_in_a_fresh_directory_each_execution(tmp_path, locked):
    """The temporary file each thread writes is named after it and new in every execution:
    its step makes two fresh files (it and its directory's entry), named as in the plan."""
    import threading

    def setup():
        s = FreshStore(str(tmp_path))
        s.lock = threading.Lock() if locked else None
        return s

    result = frontrun.explore_dpor(
        setup=setup,
        threads=[lambda s: FRESH.bump(s, s.lock)] * 2,
        invariant=lambda s: Path(s.path).read_text() == "2",
    )
    if locked:
        assert result.property_holds is True, result.explanation
        assert result.num_explored == 2
    else:
        assert result.property_holds is False, result.explanation
        assert "afterwards file" in result.explanation


def test_files_at_different_paths_are_independent(tmp_path):
    def writer(name):
        return lambda s: PROG.publish(str(tmp_path / name), name)

    result = frontrun.explore_dpor(setup=lambda: None, threads=[writer("a"), writer("b")], invariant=lambda s: True)
    assert result.property_holds is True
    assert result.num_explored == 1


def test_path_reads_commute(tmp_path):
    """Calls that only read a path commute. (A handle's methods order like writes: its position
    is shared by whoever uses the handle.)"""
    path = str(tmp_path / "data")
    Path(path).write_text("x")

    class S:
        def __init__(self):
            self.a, self.b = [], []

    result = frontrun.explore_dpor(
        setup=S,
        threads=[lambda s: PROG.check_and_size(path, s.a), lambda s: PROG.size(path, s.b)],
        invariant=lambda s: s.a == [1] and s.b == [1],
    )
    assert result.property_holds is True
    assert result.num_explored == 1
    # A write of the same path does not commute with them.
    result = frontrun.explore_dpor(
        setup=S,
        threads=[lambda s: PROG.check_and_read(path, s.a), lambda s: PROG.publish(path, "x")],
        invariant=lambda s: True,
    )
    assert result.property_holds is True
    assert result.num_explored > 1



def test_pathlib_read_then_append_races_with_open(tmp_path):
    path = str(tmp_path / "log")

    def setup():
        Path(path).write_text("")
        return PATHLIB.Claim(path)

    result = frontrun.explore_dpor(setup=setup, threads=[lambda c: c.append("a"), lambda c: c.append("b")],
                                   invariant=lambda c: numbered(path))
    assert result.property_holds is False


def test_pathlib_reads_commute(tmp_path):
    path = str(tmp_path / "data")
    Path(path).write_text("x")

    class S:
        def __init__(self):
            self.a, self.b = [], []

    result = frontrun.explore_dpor(setup=S, threads=[lambda s: PATHLIB.size(path, s.a), lambda s: PATHLIB.size(path, s.b)],
                                   invariant=lambda s: s.a == s.b == [1])
    assert result.property_holds is True
    assert result.num_explored == 1


DIRECTORIES = load(
    """
    import glob
    import os
    import shutil
    from pathlib import Path

    class Spool:
        def __init__(self, d):
            self.d = os.path.join(d, "spool")
            shutil.rmtree(self.d, ignore_errors=True)
            os.makedirs(os.path.join(self.d, "done"))
            with open(os.path.join(self.d, "job.txt"), "w") as f:
                f.write("job")
            self.token = str(id(self))

    def claim_by_move(s):
        src = os.path.join(s.d, "job.txt")
        if os.path.exists(src):
            shutil.move(src, os.path.join(s.d, "done"))

    def claim_by_rename(s):
        src = os.path.join(s.d, "job.txt")
        if os.path.exists(src):
            os.rename(src, os.path.join(s.d, "done", "job.txt"))

    def save_next(s):
        n = len(os.listdir(s.d))
        with open(os.path.join(s.d, "%04d.txt" % n), "x") as f:
            f.write("data")

    def janitor(s):
        for name in os.listdir(s.d):
            p = os.path.join(s.d, name)
            if os.path.isfile(p):
                os.remove(p)

    def janitor_by_glob(s):
        for p in glob.glob(os.path.join(s.d, "*.txt")):
            os.remove(p)

    def janitor_by_iterdir(s):
        for p in Path(s.d).iterdir():
            if p.is_file():
                p.unlink()

    def publish_via_temp(name):
        def publish(s):
            import uuid

            # Both threads' log, named anew in every execution (their two orders).
            with open(os.path.join(s.d, f"{s.token}.log"), "a") as f:
                f.write(name)
            tmp = os.path.join(s.d, f"{uuid.uuid4().hex}.tmp")
            with open(tmp, "w") as f:
                f.write(name)
            os.replace(tmp, os.path.join(s.d, name))
        return publish

    def write_own(name):
        def write(s):
            with open(os.path.join(s.d, name), "w") as f:
                f.write(name)
        return write
    """
)


@pytest.mark.parametrize("claim", ["claim_by_move", "claim_by_rename"])
def test_a_move_writes_its_source_too(tmp_path, claim):
    # Both threads see job.txt and move it: the second move's source is gone.
    p = DIRECTORIES
    result = frontrun.explore_dpor(setup=lambda: p.Spool(str(tmp_path)), threads=[getattr(p, claim)] * 2)
    assert result.failure_kind == "exception", result.explanation
    assert "FileNotFoundError" in result.explanation or "Error" in result.explanation
    assert "job.txt" in result.explanation


@pytest.mark.parametrize("janitor", ["save_next", "janitor", "janitor_by_glob", "janitor_by_iterdir"])
def test_a_listing_is_ordered_against_what_makes_or_removes_an_entry(tmp_path, janitor):
    # Two threads count the entries, then make the next name (FileExistsError), or list, then
    # remove what they listed (FileNotFoundError): a listing reads its directory, and making
    # or removing an entry writes it.
    p = DIRECTORIES
    result = frontrun.explore_dpor(setup=lambda: p.Spool(str(tmp_path)), threads=[getattr(p, janitor)] * 2)
    assert result.failure_kind == "exception", result.explanation
    assert "FileExistsError" in result.explanation or "FileNotFoundError" in result.explanation


def test_entries_of_different_names_commute(tmp_path):
    p = DIRECTORIES
    result = frontrun.explore_dpor(setup=lambda: p.Spool(str(tmp_path)),
                                   threads=[p.write_own("a.txt"), p.write_own("b.txt")])
    assert result.property_holds is True, result.explanation
    assert result.num_explored == 1


def test_entries_named_afresh_in_every_execution_repeat_their_schedules(tmp_path):
    # A temporary file named by a uuid: its entry in the directory is keyed by the file's
    # number, which the search repeats, not by its name, which it could not.
    p = DIRECTORIES
    result = frontrun.explore_dpor(setup=lambda: p.Spool(str(tmp_path)),
                                   threads=[p.publish_via_temp("a.txt"), p.publish_via_temp("b.txt")],
                                   invariant=lambda s: {"a.txt", "b.txt"} <= set(os.listdir(s.d)))
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.num_explored >= 2


TREES = load(
    """
    import os
    import shutil
    from pathlib import Path

    class Tree:
        def __init__(self, d):
            self.root = os.path.join(d, "tree")
            shutil.rmtree(self.root, ignore_errors=True)
            shutil.rmtree(self.root + "-copy", ignore_errors=True)
            os.makedirs(os.path.join(self.root, "a", "b"))
            self.count = None
            self.wrote = None

    def add_deep(s):
        with open(os.path.join(s.root, "a", "b", "f.txt"), "w") as f:
            f.write("x")

    def count_by_walk(s):
        s.count = sum(len(files) for _, _, files in os.walk(s.root))

    def count_by_rglob(s):
        s.count = len(list(Path(s.root).rglob("*.txt")))

    def count_by_path_walk(s):
        s.count = sum(len(files) for _, _, files in Path(s.root).walk())

    def remove_tree(s):
        shutil.rmtree(os.path.join(s.root, "a"))

    def copy_tree(s):
        shutil.copytree(s.root, s.root + "-copy")
        s.count = sum(len(files) for _, _, files in os.walk(s.root + "-copy"))

    def write_deep(s):
        try:
            with open(os.path.join(s.root, "a", "b", "g.txt"), "w") as f:
                f.write("y")
            s.wrote = True
        except FileNotFoundError:
            s.wrote = False
    """
)


@pytest.mark.parametrize("counter", ["count_by_walk", "count_by_rglob", "count_by_path_walk", "copy_tree"])
def test_a_tree_walk_lists_the_directories_under_its_path(tmp_path, counter):
    # A walk lists every directory under its path, not only the top one: a file made two
    # levels down before the walk reaches it is counted, after it is not (the search proved
    # the count always 1 when the walk was a listing of the top directory alone).
    p = TREES
    if counter == "count_by_path_walk" and sys.version_info < (3, 12):
        pytest.skip("Path.walk is new in 3.12")
    result = frontrun.explore_dpor(setup=lambda: p.Tree(str(tmp_path)), threads=[p.add_deep, getattr(p, counter)],
                                   invariant=lambda s: s.count == 1)
    assert result.failure_kind == "invariant", result.explanation
    assert "count" in result.explanation


def test_removing_a_tree_writes_the_directories_in_it(tmp_path):
    p = TREES
    result = frontrun.explore_dpor(setup=lambda: p.Tree(str(tmp_path)), threads=[p.write_deep, p.remove_tree],
                                   invariant=lambda s: s.wrote)
    assert result.failure_kind in ("invariant", "exception"), result.explanation
    assert result.num_explored == 2


QUEUE = load(
    """
    import os
    import shutil

    class Queue:
        def __init__(self, d):
            self.d = os.path.join(d, "queue")
            shutil.rmtree(self.d, ignore_errors=True)
            os.makedirs(os.path.join(self.d, "done"))
            for name in ("j1", "j2"):
                open(os.path.join(self.d, name), "w").close()
            self.claimed = []

    def claim_all(s):
        for name in sorted(os.listdir(s.d)):
            path = os.path.join(s.d, name)
            if os.path.isfile(path):
                try:
                    os.rename(path, os.path.join(s.d, "done", name))
                    s.claimed.append(name)
                except FileNotFoundError:
                    pass
    """
)


def test_workers_that_list_then_rename_the_listed_files_repeat_their_schedules(tmp_path):
    # Each file is numbered alike in every execution: by first use, the two workers' renames
    # named the jobs' new paths in different orders, and the search stopped on "nondeterminism".
    p = QUEUE
    result = frontrun.explore_dpor(setup=lambda: p.Queue(str(tmp_path)), threads=[p.claim_all, p.claim_all],
                                   invariant=lambda s: sorted(s.claimed) == ["j1", "j2"])
    assert result.property_holds is True, result.explanation or result.inconclusive_reason
    assert result.num_explored > 2


CACHE_FILE = load(
    """
    import json
    import os

    class Cache:
        def __init__(self, d):
            self.path = os.path.join(d, "cache.json")
            if os.path.exists(self.path):
                os.remove(self.path)
            self.seen = []

    def save(s):
        with open(s.path, "w") as f:
            json.dump({"v": 1}, f)  # the standard library writes to f: no report of its own

    def load_if_there(s):
        if os.path.exists(s.path):
            with open(s.path) as f:
                s.seen.append(f.read())
    """
)


def test_a_file_handed_to_code_out_of_sight_is_used_at_the_call(tmp_path):
    # json.dump(obj, f) writes through f in Python frontrun does not rewrite: the reader could
    # read the file between open("w") and the dump (""), and that order was never explored.
    p = CACHE_FILE
    result = frontrun.explore_dpor(setup=lambda: p.Cache(str(tmp_path)), threads=[p.save, p.load_if_there],
                                   invariant=lambda s: s.seen in ([], ['{"v": 1}']))
    assert result.failure_kind == "invariant", result.explanation
    assert "Race on file" in result.explanation and "json.dump(" in result.explanation, result.explanation


ONE_STRING_PATH = load(
    """
    import os

    def create(s):
        open(f"{s.d}/out", "w").close()

    def read_fstring(s):
        try:
            with open(f"{s.d}/out") as f:
                s.seen.append(f.read())
        except FileNotFoundError:
            s.seen.append(None)

    def read_constant(s):
        try:
            with open("out") as f:  # in the current directory: setup chdir()s there
                s.seen.append(f.read())
        except FileNotFoundError:
            s.seen.append(None)
    """
)


@pytest.mark.parametrize("reader", ["read_fstring", "read_constant"])
def test_a_path_call_with_one_string_argument_is_seen(tmp_path, monkeypatch, reader):
    # A call whose lone argument is a string (a constant, an f-string) was never reported: no
    # container can be passed that way. open("out") then read the file unseen, and the search
    # stopped on "nondeterminism" (or missed the order) when another thread created it.
    p = ONE_STRING_PATH
    monkeypatch.chdir(tmp_path)
    seen = set()

    def setup():
        if os.path.exists(tmp_path / "out"):
            os.remove(tmp_path / "out")
        return type("S", (), {"d": str(tmp_path), "seen": []})()

    result = frontrun.explore_dpor(setup=setup, threads=[p.create, getattr(p, reader)],
                                   invariant=lambda s: seen.add(tuple(s.seen)) or True)
    assert result.property_holds is True, result.inconclusive_reason
    assert seen == {("",), (None,)}


CLAIM_BY_THREAD = load(
    """
    import os
    import threading

    def claim(s):
        # The job is renamed to a name of this thread's: exactly one worker gets it.
        try:
            os.rename(os.path.join(s.d, "job"), os.path.join(s.d, f"job.{threading.get_ident()}"))
            s.done.append(1)
        except FileNotFoundError:
            pass
    """
)


def test_a_path_named_by_the_thread_is_the_same_in_every_execution(tmp_path):
    # Each explored thread runs on the same worker in every execution: its get_ident(), and the
    # file named by it, were another thread's in the next execution ("nondeterminism").
    p = CLAIM_BY_THREAD

    def setup():
        for name in os.listdir(tmp_path):
            os.remove(tmp_path / name)
        (tmp_path / "job").write_text("")
        return type("S", (), {"d": str(tmp_path), "done": []})()

    result = frontrun.explore_dpor(setup=setup, threads=[p.claim, p.claim], invariant=lambda s: len(s.done) == 1)
    assert result.property_holds is True, result.inconclusive_reason


def test_the_rewriters_path_names_are_the_runtimes():
    # The rewriter reports a path call with one string argument by the callee's name
    # (methods::PATH_FUNCTIONS), and a pathlib method by its name (methods::PATH_METHODS); the
    # runtime knows them by `_dpor`'s tables. (Two-path calls, a move or a copy, are reported
    # anyway: their arguments are two.)
    import glob

    from frontrun import _dpor, _native

    one_path = {f.__name__ for f, _, how in _dpor._PATH_FUNCTIONS if how not in (_dpor.PATH_MOVE, _dpor.PATH_COPY)}
    one_path |= {glob.glob.__name__, glob.iglob.__name__}
    assert set(_native.PATH_FUNCTIONS) == one_path
    assert set(_native.PATH_METHODS) == set(_dpor._PATH_METHODS)


FLOCKED = load(
    """
    import fcntl
    from fcntl import flock  # bound at import, before the exploration

    def bump(s, early):
        with open(s.path, "r+") as f:
            flock(f, fcntl.LOCK_EX)
            n = int(f.read() or 0)
            if early:
                fcntl.flock(f, fcntl.LOCK_UN)
            f.seek(0)
            f.truncate()
            f.write(str(n + 1))
            f.flush()
            if not early:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def bump_until_closed(s):
        with open(s.path, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            n = int(f.read() or 0)
            f.seek(0)
            f.write(str(n + 1))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl is POSIX")
@pytest.mark.parametrize("early", [False, True])
def test_flock_is_waited_for_in_the_model(tmp_path, early):
    """Each thread opens the file itself, so their flocks exclude each other. A real blocking
    flock held the turn while the holder could not run to let go: the search hung."""
    path = tmp_path / "counter"

    def setup():
        path.write_text("0")
        return State(path=str(path))

    threads = [lambda s: FLOCKED.bump(s, early)] * 2
    result = frontrun.explore_dpor(setup=setup, threads=threads, invariant=lambda s: path.read_text() == "2",
                                   timeout=60)
    if early:
        assert result.property_holds is False, result.explanation
        assert "flock" in result.explanation and "afterwards file" in result.explanation
    else:
        assert result.property_holds is True, result.inconclusive_reason
        assert result.num_explored >= 2  # both orders of the two locks


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl is POSIX")
def test_a_flock_let_go_by_closing_the_file_wakes_the_waiter(tmp_path):
    path = tmp_path / "counter"

    def setup():
        path.write_text("0")
        return State(path=str(path))

    result = frontrun.explore_dpor(setup=setup, threads=[FLOCKED.bump_until_closed] * 2,
                                   invariant=lambda s: path.read_text() == "2", timeout=60)
    assert result.property_holds is True, result.inconclusive_reason
    assert result.num_explored >= 2
    import fcntl

    assert fcntl.flock is _coop._orig["flock"]  # the real one again after the exploration


PRINTING = load(
    """
    import io

    def log(s, name):
        print(name, "done", sep=": ", file=s.out)

    def shout(s, name):
        print(name, "done")  # the console: no step

    def misuse(s, how):
        if how == "sep":
            print("x", sep=1, file=s.out)
        elif how == "file":
            print("x", file=42)
        else:
            print("x", "y", sep=None, end=None, file=s.out, flush=True)
    """
)


def test_print_to_a_shared_file_interleaves_its_writes(tmp_path):
    """print() writes each argument, each sep and the end with a call of its own: two threads
    printing a line each to one file can leave 'A: B: done' and the like."""
    path = tmp_path / "log.txt"

    def setup():
        return State(out=open(path, "w"))

    def whole_lines(s):
        s.out.close()
        return sorted(path.read_text().splitlines()) == ["A: done", "B: done"]

    result = frontrun.explore_dpor(setup, [lambda s: PRINTING.log(s, "A"), lambda s: PRINTING.log(s, "B")],
                                   whole_lines)
    assert result.property_holds is False, result.explanation
    assert f"Race on file {path}" in result.explanation
    assert 'print(name, "done", sep=": ", file=s.out)' in result.explanation
    # To a StringIO too: its own object, not a path.
    result = frontrun.explore_dpor(lambda: State(out=io.StringIO()),
                                   [lambda s: PRINTING.log(s, "A"), lambda s: PRINTING.log(s, "B")],
                                   lambda s: sorted(s.out.getvalue().splitlines()) == ["A: done", "B: done"])
    assert result.property_holds is False, result.explanation


def test_print_to_the_console_is_no_step(capsys):
    result = frontrun.explore_dpor(lambda: State(), [lambda s: PRINTING.shout(s, "A"), lambda s: PRINTING.shout(s, "B")],
                                   lambda s: True)
    assert result.property_holds is True and result.num_explored == 1
    assert capsys.readouterr().out.count("done") == 2


@pytest.mark.parametrize("how", ["sep", "file", "defaults"])
def test_print_in_an_explored_thread_behaves_as_print(how):
    def expected():
        out = io.StringIO()
        try:
            PRINTING.misuse(State(out=out), how)
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        return out.getvalue()

    want = expected()
    got = []

    def thread(s):
        try:
            PRINTING.misuse(s, how)
        except Exception as e:
            got.append(f"{type(e).__name__}: {e}")
        else:
            got.append(s.out.getvalue())

    result = frontrun.explore_dpor(lambda: State(out=io.StringIO()), [thread], lambda s: True)
    assert result.property_holds is True
    assert got[-1] == want and want in ("TypeError: sep must be None or a string, not int",
                                        "AttributeError: 'int' object has no attribute 'write'", "x y\n")


SOMETIMES_A_FILE = load(
    """
    import itertools

    runs = itertools.count()  # outlives an execution: not reset by setup()

    def recorder(path, memo):
        # (Names bound here are locals: the file's or the dict's use is the thread's first step.)
        def record(s, n=runs, path=path, memo=memo, write=open):
            if next(n) // 2 % 2 == 0:  # both threads write the file in the first execution
                with write(path, "w") as f:
                    f.write("x")
            else:
                memo["x"] = 1

        return record
    """
)


def test_nondeterminism_names_a_file_by_its_path(tmp_path):
    path = tmp_path / "record.txt"
    record = SOMETIMES_A_FILE.recorder(str(path), {})
    result = frontrun.explore_dpor(lambda: State(), [record, record], lambda s: True)
    assert result.property_holds is None and "nondeterminism" in result.inconclusive_reason
    reason = result.inconclusive_reason
    assert f"expected to write file {path}" in reason, reason
    assert "#703" not in reason and "FileResource" not in reason, reason


SPOOLING = load(
    """
    import os
    import tempfile

    def spool(s, how):
        n = len(os.listdir(s.dir))
        if how == "mkstemp":
            fd, _ = tempfile.mkstemp(dir=s.dir, suffix=".part")
            os.close(fd)
        elif how == "named":
            tempfile.NamedTemporaryFile("w", -1, None, None, "", "tmp", s.dir, False).close()
        else:
            s.kept.append(tempfile.TemporaryDirectory(dir=s.dir))  # (removed when it dies)
        s.counts.append(n)
    """
)


@pytest.mark.parametrize("how", ["mkstemp", "named", "directory"])
def test_a_file_tempfile_makes_is_an_entry_of_its_directory(tmp_path, how):
    """tempfile makes the file in the stdlib, where nothing is reported: the call itself writes
    the directory, so a listing in another thread is ordered against it (the search passed,
    'complete', with both threads counting 0)."""
    made = []

    def setup():
        made.append(tmp_path / f"run{len(made)}")
        made[-1].mkdir()
        return State(dir=str(made[-1]), counts=[], kept=[])

    result = frontrun.explore_dpor(setup, [lambda s: SPOOLING.spool(s, how)] * 2,
                                   lambda s: sorted(s.counts) == [0, 1])
    assert result.property_holds is False, result.explanation
    assert "Race on directory" in result.explanation
    assert "tempfile." in result.explanation and "tempfile.py" not in result.explanation
