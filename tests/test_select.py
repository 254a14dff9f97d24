"""``-k`` expressions: pytest-style and/or/not over path substrings."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ingest.errors import UsageError
from ingest.select import compile_selection

PATHS = ["papers/2019/invoice-a.pdf", "papers/2020/Invoice-b.pdf", "papers/2020/report.pdf"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("invoice", [True, True, False]),
        ("2020 and not invoice", [False, False, True]),
        ("report or 2019", [True, False, True]),
        ("not (2019 or report)", [False, True, False]),
        ("  ", [True, True, True]),
    ],
)
def test_expressions(expression: str, expected: list[bool]) -> None:
    match = compile_selection(expression)
    assert [match(p) for p in PATHS] == expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("and", "expected a word"),
        ("(a or b", "missing ')'"),
        ("a b", "unexpected 'b'"),
        ("not", "ends too early"),
        (")", "expected a word"),
    ],
)
def test_malformed_expressions_are_usage_errors(expression: str, problem: str) -> None:
    pattern = re.escape(f"invalid -k expression {expression!r}: ") + ".*" + re.escape(problem)
    with pytest.raises(UsageError, match=pattern):
        compile_selection(expression)


words = st.text(alphabet="abcxyz/._-", min_size=1, max_size=6).filter(
    lambda w: w not in {"and", "or", "not"}
)


@given(words, words, st.text(alphabet="abcxyz/._-", max_size=20))
def test_operators_agree_with_python_logic(a: str, b: str, path: str) -> None:
    has_a, has_b = a in path, b in path
    assert compile_selection(f"{a} and not {b}")(path) == (has_a and not has_b)
    assert compile_selection(f"not {a} or {b}")(path) == ((not has_a) or has_b)
    assert compile_selection(f"({a} or {b}) and {a}")(path) == has_a
