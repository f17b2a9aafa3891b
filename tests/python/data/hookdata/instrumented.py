"""Everything instrument_module() must reach, imported before the hook."""

import functools
from os.path import join  # another module's function: left alone


def top():
    return "MARK"


def make_counter():
    count = 0

    def bump():
        nonlocal count
        count += 1
        return count, "MARK"

    return bump


counter = make_counter()


def logged(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs), "MARK"

    return wrapper


@logged
def decorated():
    return "MARK"


@functools.lru_cache(maxsize=None)
def cached():
    return "MARK"


class Widget:
    def method(self):
        return "MARK"

    @staticmethod
    def static():
        return "MARK"

    @classmethod
    def klass(cls):
        return "MARK"

    @property
    def prop(self):
        return "MARK"

    @prop.setter
    def prop(self, value):
        self.stored = (value, "MARK")

    @functools.cached_property
    def cached_prop(self):
        return "MARK"

    class Inner:
        def method(self):
            return "MARK"


lambda_in_container = {"f": lambda: "MARK"}
