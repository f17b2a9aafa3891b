"""A regular package with a data file, a submodule and a subpackage."""


def value():
    return "MARK"
