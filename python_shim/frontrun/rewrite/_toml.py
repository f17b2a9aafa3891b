"""A small TOML reader for Python 3.10 without ``tomli`` (3.11+ uses ``tomllib``).

It reads the whole document so that ``[tool.frontrun]`` is found reliably, supporting what
pyproject files use: tables, arrays of tables, dotted and quoted keys, basic/literal strings
(also multi-line), integers, floats, booleans, arrays and inline tables. Dates and times are
kept as their raw text. It is lenient where TOML is strict (e.g. redefinitions), because the
only goal is reading frontrun's keys, never validating someone else's file.
"""

from __future__ import annotations

import re


class TOMLDecodeError(ValueError):
    pass


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^\s,\]\}#]+(?: [0-9][^\s,\]\}#]*)?")  # a date-time may contain one space
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}


def loads(text: str) -> dict:
    return _Parser(text).document()


class _Parser:
    def __init__(self, text: str):
        self.s = text.replace("\r\n", "\n")
        self.i = 0

    def error(self, message: str) -> TOMLDecodeError:
        line = self.s.count("\n", 0, self.i) + 1
        return TOMLDecodeError(f"{message} (line {line})")

    def peek(self, n: int = 1) -> str:
        return self.s[self.i : self.i + n]

    def skip_ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.s.find("\n", self.i)
            self.i = len(self.s) if end < 0 else end

    def skip_ws_newlines_comments(self) -> None:
        while True:
            self.skip_ws()
            self.skip_comment()
            if self.peek() == "\n":
                self.i += 1
            else:
                return

    def end_of_line(self) -> None:
        self.skip_ws()
        self.skip_comment()
        if self.i < len(self.s):
            if self.peek() != "\n":
                raise self.error("expected end of line")
            self.i += 1

    def document(self) -> dict:
        root: dict = {}
        current = root
        while True:
            self.skip_ws_newlines_comments()
            if self.i >= len(self.s):
                return root
            if self.peek(2) == "[[":
                self.i += 2
                keys = self.key()
                self.expect("]]")
                current = self.array_table(root, keys)
            elif self.peek() == "[":
                self.i += 1
                keys = self.key()
                self.expect("]")
                current = self.table(root, keys)
            else:
                keys = self.key()
                self.expect("=")
                value = self.value()
                target = self.table(current, keys[:-1])
                target[keys[-1]] = value
            self.end_of_line()

    def expect(self, token: str) -> None:
        self.skip_ws()
        if self.peek(len(token)) != token:
            raise self.error(f"expected {token!r}")
        self.i += len(token)

    def table(self, parent: dict, keys: list) -> dict:
        for key in keys:
            child = parent.setdefault(key, {})
            if isinstance(child, list):  # a path through an array of tables means its last entry
                child = child[-1]
            if not isinstance(child, dict):
                raise self.error(f"key {key!r} is not a table")
            parent = child
        return parent

    def array_table(self, root: dict, keys: list) -> dict:
        parent = self.table(root, keys[:-1])
        entries = parent.setdefault(keys[-1], [])
        if not isinstance(entries, list):
            raise self.error(f"key {keys[-1]!r} is not an array of tables")
        entries.append({})
        return entries[-1]

    def key(self) -> list:
        keys = []
        while True:
            self.skip_ws()
            char = self.peek()
            if char == '"':
                keys.append(self.basic_string())
            elif char == "'":
                keys.append(self.literal_string())
            else:
                match = _BARE_KEY.match(self.s, self.i)
                if not match:
                    raise self.error("expected a key")
                keys.append(match.group())
                self.i = match.end()
            self.skip_ws()
            if self.peek() != ".":
                return keys
            self.i += 1

    def value(self):
        self.skip_ws()
        char = self.peek()
        if self.peek(3) in ('"""', "'''"):
            return self.multiline_string()
        if char == '"':
            return self.basic_string()
        if char == "'":
            return self.literal_string()
        if char == "[":
            return self.array()
        if char == "{":
            return self.inline_table()
        match = _SCALAR.match(self.s, self.i)
        if not match:
            raise self.error("expected a value")
        self.i = match.end()
        return _scalar(match.group().strip())

    def array(self) -> list:
        self.i += 1
        items = []
        while True:
            self.skip_ws_newlines_comments()
            if self.peek() == "]":
                self.i += 1
                return items
            items.append(self.value())
            self.skip_ws_newlines_comments()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != "]":
                raise self.error("expected ',' or ']' in array")

    def inline_table(self) -> dict:
        self.i += 1
        table: dict = {}
        self.skip_ws()
        if self.peek() == "}":
            self.i += 1
            return table
        while True:
            keys = self.key()
            self.expect("=")
            self.table(table, keys[:-1])[keys[-1]] = self.value()
            self.skip_ws()
            if self.peek() == "}":
                self.i += 1
                return table
            if self.peek() != ",":
                raise self.error("expected ',' or '}' in inline table")
            self.i += 1

    def basic_string(self) -> str:
        self.i += 1
        out = []
        while True:
            char = self.peek()
            if char == "" or char == "\n":
                raise self.error("unterminated string")
            self.i += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                out.append(self.escape())
            else:
                out.append(char)

    def escape(self) -> str:
        char = self.peek()
        self.i += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char in "uU":
            width = 4 if char == "u" else 8
            digits = self.s[self.i : self.i + width]
            self.i += width
            try:
                return chr(int(digits, 16))
            except ValueError:
                raise self.error("bad unicode escape") from None
        raise self.error(f"bad escape \\{char}")

    def literal_string(self) -> str:
        end = self.s.find("'", self.i + 1)
        newline = self.s.find("\n", self.i + 1)
        if end < 0 or (0 <= newline < end):
            raise self.error("unterminated string")
        text = self.s[self.i + 1 : end]
        self.i = end + 1
        return text

    def multiline_string(self) -> str:
        quote = self.peek(3)
        self.i += 3
        if self.peek() == "\n":  # a newline right after the opening quotes is trimmed
            self.i += 1
        out = []
        while True:
            if self.i >= len(self.s):
                raise self.error("unterminated multi-line string")
            if self.peek(3) == quote:
                # Up to two quotes may directly precede the closing delimiter.
                while self.peek(4) == quote + quote[0]:
                    out.append(quote[0])
                    self.i += 1
                self.i += 3
                return "".join(out)
            char = self.peek()
            self.i += 1
            if quote == '"""' and char == "\\":
                if self.peek() in " \t\n":  # line-ending backslash: drop whitespace up to next text
                    rest = self.i
                    while rest < len(self.s) and self.s[rest] in " \t":
                        rest += 1
                    if rest < len(self.s) and self.s[rest] == "\n":
                        while self.i < len(self.s) and self.s[self.i] in " \t\n":
                            self.i += 1
                        continue
                out.append(self.escape())
            else:
                out.append(char)


def _scalar(token: str):
    if token == "true":
        return True
    if token == "false":
        return False
    text = token.replace("_", "")
    try:
        if text.lower().startswith(("0x", "0o", "0b")):
            return int(text, 0)
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    if token in ("inf", "+inf", "-inf", "nan", "+nan", "-nan"):
        return float(token)
    return token  # dates and times, kept as text
