"""A module inside a namespace package (hooknspkg has no __init__.py)."""


def value():
    return "MARK"
