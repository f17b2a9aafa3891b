"""A SQLite-backed shop that oversells: read the stock, then update it, in two statements.

    python -m frontrun.rewrite examples/inventory.py

``execute``/``fetchone``/``commit`` are resource calls: frontrun treats each as a write to the
connection (a cursor counts as its connection), so it explores every order of the two buyers'
statements and finds the one where both see one item left.
"""

import sqlite3
import sys

from frontrun import explore_dpor


def setup():
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE TABLE stock (item TEXT PRIMARY KEY, qty INTEGER)")
    db.execute("CREATE TABLE sales (item TEXT)")
    db.execute("INSERT INTO stock VALUES ('lamp', 1)")
    db.commit()
    return db


def buy(db):
    cur = db.execute("SELECT qty FROM stock WHERE item = 'lamp'")
    (qty,) = cur.fetchone()
    if qty > 0:
        db.execute("UPDATE stock SET qty = ? WHERE item = 'lamp'", (qty - 1,))
        db.execute("INSERT INTO sales VALUES ('lamp')")
        db.commit()


def never_oversold(db):
    (sold,) = db.execute("SELECT COUNT(*) FROM sales").fetchone()
    return sold <= 1


def main():
    result = explore_dpor(setup=setup, threads=[buy, buy], invariant=never_oversold)
    print(f"explored {result.num_explored} interleavings")
    if result.property_holds:
        print("never oversold")
        return 0
    print(result.explanation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
