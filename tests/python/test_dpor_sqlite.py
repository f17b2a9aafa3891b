"""sqlite3 connections made during an exploration: each call is a step on the database file, and
a statement that finds another connection's transaction in the way waits in the model."""

import sqlite3
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from dpor_testutil import State, load  # noqa: E402

import frontrun  # noqa: E402

PROG = load(
    """
    import sqlite3

    def deposit(s):
        # Each thread its own connection, as check_same_thread wants: the read and the write
        # are two transactions, and another deposit can come in between.
        db = sqlite3.connect(s.path)
        (balance,) = db.execute("SELECT balance FROM acct").fetchone()
        db.execute("UPDATE acct SET balance = ?", (balance + 10,))
        db.commit()
        db.close()

    def deposit_immediate(s):
        # The write lock taken first: the other connection's BEGIN waits for the COMMIT.
        db = sqlite3.connect(s.path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        (balance,) = db.execute("SELECT balance FROM acct").fetchone()
        db.execute("UPDATE acct SET balance = ?", (balance + 10,))
        db.execute("COMMIT")
        db.close()

    def deposit_in_sql(s):
        with sqlite3.connect(s.path) as db:
            db.execute("UPDATE acct SET balance = balance + 10")
        db.close()

    def deposit_through_cursor(s):
        db = sqlite3.connect(s.path)
        cur = db.cursor()
        cur.execute("SELECT balance FROM acct")
        for (balance,) in cur:
            pass
        cur.execute("UPDATE acct SET balance = ?", (balance + 10,))
        db.commit()
        db.close()

    def forgets_to_commit(s):
        s.db = sqlite3.connect(s.path, timeout=2.5)
        s.db.execute("UPDATE acct SET balance = 0")

    def deposit_keeping_the_error(s):
        try:
            deposit_in_sql(s)
        except sqlite3.OperationalError as e:
            s.error = str(e)

    def two_connections_of_one_thread(s):
        first = sqlite3.connect(s.path, timeout=1)
        second = sqlite3.connect(s.path, timeout=1)
        first.execute("UPDATE acct SET balance = 1")
        second.execute("UPDATE acct SET balance = 2")

    def read_in_two_steps(s):
        db = sqlite3.connect(s.path)
        cur = db.execute("SELECT balance FROM acct UNION ALL SELECT balance FROM acct")
        s.seen = [cur.fetchone()[0]]
        s.seen.append(cur.fetchone()[0])
        cur.close()
        db.close()

    def private_memory_database(s):
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE t (v)")
        db.execute("INSERT INTO t VALUES (1)")
        s.rows.append(db.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    """,
    name="dpor_sqlite_prog",
)


def bank(tmp_path):
    path = tmp_path / "bank.db"

    def setup():
        path.unlink(missing_ok=True)
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE acct (balance INTEGER)")
            db.execute("INSERT INTO acct VALUES (100)")
        db.close()
        return State(path=path, error=None, rows=[], seen=None)

    return setup


def balance(s):
    db = sqlite3.connect(s.path)
    try:
        return db.execute("SELECT balance FROM acct").fetchone()[0]
    finally:
        db.close()


def test_an_update_lost_between_two_threads_connections_is_found(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", frontrun.SeparateConnectionsWarning)
        result = frontrun.explore_dpor(bank(tmp_path), [PROG.deposit, PROG.deposit], lambda s: balance(s) == 120)
    assert result.property_holds is False
    text = result.explanation
    assert f"Race on sqlite3 database {tmp_path.resolve() / 'bank.db'}" in text
    # Both read 100 before either wrote: thread 1's read comes between thread 0's read and commit.
    steps = [line for line in text.splitlines() if line.startswith("  thread")]
    read = next(i for i, line in enumerate(steps) if "thread 1" in line and "SELECT" in line)
    commit = next(i for i, line in enumerate(steps) if "thread 0" in line and "db.commit()" in line)
    assert read < commit, text
    assert "afterwards sqlite3 database" in text and "acct [(110,)]" in text
    # The two calls of the reading line are told apart (they were one line, "(x2)").
    assert '.fetchone()  [.execute()]' in text and '.fetchone()  [.fetchone()]' in text, text
    assert "(x2)" not in text, text


@pytest.mark.parametrize("deposit", ["deposit_immediate", "deposit_in_sql"])
def test_transactions_that_hold_the_write_lock_pass(tmp_path, deposit):
    threads = [getattr(PROG, deposit)] * 2
    result = frontrun.explore_dpor(bank(tmp_path), threads, lambda s: balance(s) == 120)
    assert result.property_holds is True, result.explanation
    assert result.num_explored >= 2  # (both orders, or one waiting for the other's commit)


def test_a_read_through_a_cursor_loop_then_a_write_loses_an_update(tmp_path):
    result = frontrun.explore_dpor(bank(tmp_path), [PROG.deposit_through_cursor] * 2,
                                   lambda s: balance(s) == 120)
    assert result.property_holds is False
    assert "for (balance,) in cur:" in result.explanation


def test_a_transaction_left_open_keeps_the_other_writer_waiting(tmp_path):
    # A real busy wait held the turn: the open transaction's thread never ran again. Here the
    # writer waits for the database's write lock in the model: a deadlock, which names it.
    result = frontrun.explore_dpor(
        bank(tmp_path), [PROG.forgets_to_commit, PROG.deposit_keeping_the_error], lambda s: s.error is None)
    assert result.property_holds is False and result.failure_kind == "deadlock"
    assert f"the write lock of sqlite3 database {tmp_path.resolve() / 'bank.db'}" in result.explanation
    # One thread's two connections: its second write waits for its first's transaction.
    result = frontrun.explore_dpor(bank(tmp_path), [PROG.two_connections_of_one_thread])
    assert result.property_holds is False and result.failure_kind == "deadlock"


def test_a_commit_waits_for_another_connections_unfinished_read(tmp_path):
    # A SELECT whose rows are not all fetched holds sqlite's shared lock: a commit then finds the
    # database locked (for real, busy timeout 0) and waits in the model until the read is done.
    result = frontrun.explore_dpor(bank(tmp_path), [PROG.read_in_two_steps, PROG.deposit_in_sql],
                                   lambda s: s.seen in ([100, 100], [110, 110]) and balance(s) == 110)
    assert result.property_holds is True, result.explanation
    assert result.num_explored >= 3


def test_private_in_memory_databases_share_nothing(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", frontrun.SeparateConnectionsWarning)
        result = frontrun.explore_dpor(bank(tmp_path), [PROG.private_memory_database] * 2,
                                       lambda s: s.rows == [1, 1])
    assert result.property_holds is True, result.explanation
    assert result.num_explored == 2  # (the two appends to s.rows: the databases order nothing)


def unrewritten_deposit(s):
    """Not rewritten (this test module): a library's call of execute, seen by the connection."""
    db = sqlite3.connect(s.path)
    (value,) = db.execute("SELECT balance FROM acct").fetchone()
    db.execute("UPDATE acct SET balance = ?", (value + 10,))
    db.commit()
    db.close()


def test_calls_from_code_that_is_not_rewritten_are_steps_too(tmp_path):
    with pytest.warns(frontrun.NotInstrumentedWarning):
        result = frontrun.explore_dpor(bank(tmp_path), [unrewritten_deposit, unrewritten_deposit],
                                       lambda s: balance(s) == 120)
    assert result.property_holds is False
    assert "Race on sqlite3 database" in result.explanation


def test_connections_made_before_the_exploration_are_named_in_a_warning(tmp_path):
    # Their file is not known: each connection is its own resource, and the warning says so.
    setup = bank(tmp_path)
    setup()
    first = sqlite3.connect(tmp_path / "bank.db", check_same_thread=False)
    second = sqlite3.connect(tmp_path / "bank.db", check_same_thread=False)
    try:
        with pytest.warns(frontrun.SeparateConnectionsWarning, match="made before the exploration began"):
            frontrun.explore_dpor(lambda: None, [lambda _: PROG_USE(first), lambda _: PROG_USE(second)])
    finally:
        first.close()
        second.close()


PROG_USE = load(
    """
    def use(db):
        db.execute("SELECT balance FROM acct").fetchone()
    """,
    name="dpor_sqlite_use",
).use


def test_no_warning_for_one_shared_connection(tmp_path):
    def setup():
        s = bank(tmp_path)()
        s.db = sqlite3.connect(s.path, check_same_thread=False)
        return s

    with warnings.catch_warnings():
        warnings.simplefilter("error", frontrun.SeparateConnectionsWarning)
        result = frontrun.explore_dpor(setup, [lambda s: PROG_USE(s.db)] * 2)
    assert result.property_holds is True, result.explanation


def test_the_connections_of_an_exploration_are_plain_again_afterwards(tmp_path):
    frontrun.explore_dpor(bank(tmp_path), [PROG.deposit_in_sql])
    db = sqlite3.connect(tmp_path / "bank.db")
    assert type(db) is sqlite3.Connection
    db.close()


def test_a_connection_used_by_another_thread_raises_as_sqlite_does(tmp_path):
    # Opened without sqlite's own check (so the next execution can roll it back): frontrun's.
    def setup():
        s = bank(tmp_path)()
        s.db = sqlite3.connect(s.path)
        return s

    result = frontrun.explore_dpor(setup, [lambda s: PROG_USE(s.db)])
    assert result.property_holds is False and result.failure_kind == "exception"
    assert "SQLite objects created in a thread can only be used in that same thread" in result.explanation
