"""What every keyword-search backend promises about bad input, written once for all of them
(SQLite's FTS5 in ``test_search``, PostgreSQL's full-text search in ``test_postgres_search``):
a query is never a database error, only a :class:`~ingest.UsageError` or hits.

A backend's test module subclasses :class:`KeywordSearchContract` as a ``Test...`` class and
gives it two fixtures: ``searched``, the backend's ``search`` function with a store holding
the documents of ``test_search.build_db``, and ``hostile_query``, parametrized with the query
syntax that backend's parser knows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest import UsageError
from ingest_plugins.sqlite_search import SearchHit

#: A backend's ``search(target, query, *, raw=..., limit=...)`` and its target.
Searched = tuple[Callable[..., list[Any]], object]


class KeywordSearchContract:
    """The tests every keyword-search backend passes (see the module docstring)."""

    @pytest.mark.parametrize("raw", [False, True])
    def test_hostile_queries_never_raise_database_errors(
        self, searched: Searched, hostile_query: str, raw: bool
    ) -> None:
        search, target = searched
        try:
            hits = search(target, hostile_query, raw=raw)
        except UsageError:
            assert raw, "a query of words is never a syntax error"
        else:
            assert all(isinstance(hit, SearchHit) for hit in hits)

    @pytest.mark.parametrize("query", ["", "   ", "\n\t"])
    def test_empty_query_is_a_usage_error(self, searched: Searched, query: str) -> None:
        search, target = searched
        with pytest.raises(UsageError, match="empty"):
            search(target, query)

    def test_bad_limit_is_a_usage_error(self, searched: Searched) -> None:
        search, target = searched
        with pytest.raises(UsageError, match="limit"):
            search(target, "herons", limit=0)

    # The store is only read, so reusing it across examples is safe; and each backend's class
    # runs this one method (Hypothesis sees two executors), on examples of the same shape.
    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(query=st.text(), raw=st.booleans())
    def test_arbitrary_queries_raise_only_usage_errors(
        self, searched: Searched, query: str, raw: bool
    ) -> None:
        search, target = searched
        with contextlib.suppress(UsageError):  # anything else fails the test
            search(target, query, raw=raw, limit=3)
