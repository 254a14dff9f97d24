"""``-k EXPR``: select sources by path, in the spirit of pytest's keyword expressions.

``EXPR`` is made of words matched case-insensitively as substrings of the path, combined
with ``and``, ``or``, ``not`` and parentheses: ``-k "invoice and not 2019"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ingest.errors import UsageError

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
_OPERATORS = {"and", "or", "not"}

Matcher = Callable[[str], bool]


def compile_selection(expression: str | None) -> Matcher:
    """Compile ``-k`` into a predicate on a path string.

    :param expression: the expression, or ``None``/blank to select everything.
    :returns: a function telling whether a path is selected.
    :raises UsageError: for a malformed expression, quoting it and saying what was expected.
    """
    if expression is None or not expression.strip():
        return lambda _path: True
    tokens = _TOKEN.findall(expression)
    parser = _Parser(tokens, expression)
    matcher = parser.parse_or()
    if parser.position != len(tokens):
        parser.fail(f"unexpected {tokens[parser.position]!r}")
    return matcher


class _Parser:
    """Recursive descent: or_expr := and_expr ('or' and_expr)*; and_expr := not_expr ..."""

    def __init__(self, tokens: list[str], expression: str) -> None:
        self.tokens = tokens
        self.expression = expression
        self.position = 0

    def fail(self, problem: str) -> None:
        raise UsageError(f"invalid -k expression {self.expression!r}: {problem}")

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            self.fail("it ends too early")
            raise AssertionError  # pragma: no cover - fail() raises
        self.position += 1
        return token

    def parse_or(self) -> Matcher:
        left = self.parse_and()
        while self.peek() == "or":
            self.take()
            right = self.parse_and()
            left = _either(left, right)
        return left

    def parse_and(self) -> Matcher:
        left = self.parse_not()
        while self.peek() == "and":
            self.take()
            right = self.parse_not()
            left = _both(left, right)
        return left

    def parse_not(self) -> Matcher:
        if self.peek() == "not":
            self.take()
            inner = self.parse_not()
            return lambda path: not inner(path)
        return self.parse_atom()

    def parse_atom(self) -> Matcher:
        token = self.take()
        if token == "(":
            inner = self.parse_or()
            if self.peek() != ")":
                self.fail("missing ')'")
            self.take()
            return inner
        if token == ")" or token in _OPERATORS:
            self.fail(f"expected a word, got {token!r}")
        needle = token.lower()
        return lambda path: needle in path.lower()


def _either(left: Matcher, right: Matcher) -> Matcher:
    return lambda path: left(path) or right(path)


def _both(left: Matcher, right: Matcher) -> Matcher:
    return lambda path: left(path) and right(path)
