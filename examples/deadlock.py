"""Two transfers that take the account locks in opposite orders: a deadlock.

    python -m frontrun.rewrite examples/deadlock.py

frontrun reports it as soon as both threads wait, naming each lock by the attribute that holds it
and where it was created, and showing how the threads got there.
"""

import sys
import threading

from frontrun import explore_dpor


class Account:
    def __init__(self, balance):
        self.balance = balance
        self.lock = threading.Lock()


class Bank:
    def __init__(self):
        self.checking = Account(100)
        self.savings = Account(100)


def transfer(source, target, amount):
    with source.lock:
        with target.lock:
            source.balance -= amount
            target.balance += amount


def to_savings(bank):
    transfer(bank.checking, bank.savings, 10)


def to_checking(bank):
    transfer(bank.savings, bank.checking, 20)


def total_is_200(bank):
    return bank.checking.balance + bank.savings.balance == 200


def main():
    result = explore_dpor(setup=Bank, threads=[to_savings, to_checking], invariant=total_is_200)
    print(f"explored {result.num_explored} interleavings")
    if result.property_holds:
        print("no deadlock and no race")
        return 0
    print(result.explanation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
