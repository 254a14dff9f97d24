"""The README's hook table ("Writing a plugin" → "Hooks") matches ``ingest.hookspecs``: one
row per hookspec, with its exact argument names, whether the first result wins, and where it
runs. The list of hooks comes from the hookspecs module, so a hook added there fails here
until the README has its row."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest
from helpers import REPO
from ingest import hookspecs

HEADING = "### Hooks"
PLACES = ("driver", "workers", "driver and workers")


def specs() -> dict[str, Callable[..., Any]]:
    """Every function of the hookspecs module marked with ``@hookspec``."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    found = {
        name: function
        for name, function in vars(hookspecs).items()
        if callable(function) and hasattr(function, marker)
    }
    assert found, "no hookspec found: has the marker's project name changed?"
    return found


def firstresult(function: Callable[..., Any]) -> bool:
    return bool(getattr(function, f"{hookspecs.PROJECT_NAME}_spec").get("firstresult"))


def table() -> dict[str, list[str]]:
    """The rows of the README's hook table by hook name, each as its stripped cells."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    lines = readme.splitlines()
    assert HEADING in lines, f"README.md has no {HEADING!r} section"
    rows: dict[str, list[str]] = {}
    for line in lines[lines.index(HEADING) + 1 :]:
        if line.startswith("#"):
            break
        found = re.match(r"\|\s*`(ingest_\w+)`\s*\|", line)
        if found:
            assert found.group(1) not in rows, f"README lists {found.group(1)} twice"
            rows[found.group(1)] = [cell.strip() for cell in line.strip().strip("|").split("|")]
    return rows


def places_in_docstring(function: Callable[..., Any]) -> str | None:
    """Where the hookspec's docstring says the hook runs, in the table's words, if it says."""
    doc = inspect.getdoc(function) or ""
    driver = re.search(r"\bon the driver\b", doc) is not None
    worker = re.search(r"\b(?:in|on) (?:a|every) worker\b", doc) is not None
    if driver and worker:
        return "driver and workers"
    return "driver" if driver else "workers" if worker else None


def expected_row(name: str, function: Callable[..., Any]) -> str:
    """The row to paste into the README for a hook, but for its last column."""
    arguments = ", ".join(f"`{p}`" for p in inspect.signature(function).parameters)
    results = "first result" if firstresult(function) else "all"
    where = places_in_docstring(function) or "driver"
    return f"| `{name}` | {arguments} | {results} | {where} | (what it is for) |"


def test_every_hook_has_a_row_and_every_row_a_hook() -> None:
    rows, hooks = table(), specs()
    missing = [expected_row(name, hooks[name]) for name in sorted(hooks.keys() - rows.keys())]
    assert not missing, "README's hook table lacks:\n" + "\n".join(missing)
    stale = sorted(rows.keys() - hooks.keys())
    assert not stale, f"README's hook table lists hooks that do not exist: {stale}"


@pytest.mark.parametrize("name", sorted(specs()))
def test_the_row_gives_the_exact_arguments_results_and_place(name: str) -> None:
    function = specs()[name]
    row = table().get(name)
    if row is None:
        pytest.fail(f"README's hook table lacks:\n{expected_row(name, function)}")
    assert len(row) == 5, f"the row of {name} should have 5 cells: {row}"
    _, arguments, results, where, purpose = row
    names = list(inspect.signature(function).parameters)
    assert re.findall(r"`(\w+)`", arguments) == names, f"{name} takes {names}, in this order"
    assert arguments == ", ".join(f"`{p}`" for p in names)
    if firstresult(function):
        assert results == "first result", f"{name} is firstresult"
    else:
        assert results == "all" or results.startswith("all ("), f"{name} calls all"
    assert where in PLACES
    said = places_in_docstring(function)
    if said is not None:
        assert where == said, f"the docstring of {name} says it runs on: {said}"
    assert purpose, f"say what {name} is for"


@pytest.mark.parametrize(
    ("doc", "place"),
    [
        ("Called on the driver once per run.", "driver"),
        ("Called in a worker, once per source.", "workers"),
        ("Called once per process, on the driver and on every worker.", "driver and workers"),
        (
            "Runs on the driver, and again in every worker after it rebuilt the manager.",
            "driver and workers",
        ),
        ("Called on the driver; ``manager.specs`` are the names a worker loads.", "driver"),
        ("Called on the driver when a worker backend sets its deadlines.", "driver"),
        ("Called once the settings are final.", None),
    ],
)
def test_the_place_of_a_hook_is_read_from_its_docstring(doc: str, place: str | None) -> None:
    """The rule the table is checked with: "on the driver", "in a worker" and "on every
    worker" name places; other mentions of workers do not."""

    def hook() -> None: ...

    hook.__doc__ = doc
    assert places_in_docstring(hook) == place
