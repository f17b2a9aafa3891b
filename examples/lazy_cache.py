"""A lazily initialised singleton: two threads may both see "not yet" and both build it.

    python -m frontrun.rewrite examples/lazy_cache.py

``get_settings()`` checks a module global and creates the object on first use. Under the right
interleaving both callers create one, and they end up holding different "singletons".
"""

import sys

from frontrun import explore_dpor

_settings = None
created = []


class Settings:
    def __init__(self):
        created.append(self)
        self.values = {"retries": 3}


def get_settings():
    global _settings
    if _settings is None:
        _settings = Settings()
    return _settings


def setup():
    global _settings
    _settings = None
    created.clear()
    return {}


def caller(seen):
    seen[len(seen)] = get_settings()


def one_instance(seen):
    return len(created) == 1 and len({id(s) for s in seen.values()}) == 1


def main():
    result = explore_dpor(setup=setup, threads=[caller, caller], invariant=one_instance)
    print(f"explored {result.num_explored} interleavings")
    if result.property_holds:
        print("no race: the invariant holds in every interleaving")
        return 0
    print(result.explanation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
