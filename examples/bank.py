"""A bank whose transfer checks the balance, then debits it: a classic check-then-act race.

Run it through the rewriter so the accesses report themselves:

    python -m frontrun.rewrite examples/bank.py

Two transfers of 60 from an account holding 100 must not both succeed; frontrun finds the
interleaving where they do, and explains it access by access.
"""

import sys

from frontrun import explore_dpor


class InsufficientFunds(Exception):
    pass


class Account:
    def __init__(self, owner, balance):
        self.owner = owner
        self.balance = balance


class Bank:
    def __init__(self):
        self.accounts = {"alice": Account("alice", 100), "bob": Account("bob", 0)}

    def transfer(self, source, target, amount):
        src = self.accounts[source]
        if src.balance < amount:
            raise InsufficientFunds(source)
        src.balance -= amount
        self.accounts[target].balance += amount


def teller(bank):
    try:
        bank.transfer("alice", "bob", 60)
    except InsufficientFunds:
        pass


def money_is_conserved(bank):
    alice, bob = bank.accounts["alice"].balance, bank.accounts["bob"].balance
    return alice >= 0 and alice + bob == 100


def main():
    result = explore_dpor(setup=Bank, threads=[teller, teller], invariant=money_is_conserved)
    print(f"explored {result.num_explored} interleavings")
    if result.property_holds:
        print("no race: the invariant holds in every interleaving")
        return 0
    print(result.explanation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
