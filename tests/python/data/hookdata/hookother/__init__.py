"""Never included by the tests: must come out exactly as a plain import makes it."""


def value():
    return "MARK"


class Thing:
    def method(self):
        return [x * 2 for x in range(3)], "MARK"
