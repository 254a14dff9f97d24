"""The public surface: first-party plugins are written exactly as a third party's would be.

A plugin imports from ``ingest`` (and an executor backend from ``ingest.workers``) only the
names their ``__all__`` declares; anything else in ``ingest`` is private and may change. Test
modules may also use ``ingest.testing``, the pytest plugin published through ``pytest11``.
Plugins may import each other's modules (``ingest_plugins.pdf_common``): a third party could.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import ingest
import ingest.workers
import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGIN_ROOTS = (REPO / "plugins", REPO / "tests" / "plugins")

#: The declared modules and the names each one exports.
PUBLIC: dict[str, frozenset[str]] = {
    "ingest": frozenset(ingest.__all__),
    "ingest.workers": frozenset(ingest.workers.__all__),
}
#: Published for tests only: the fixtures' types (``Runner``, ``PipelineRun``).
TESTING = "ingest.testing"


def _is_test_module(path: Path) -> bool:
    return path.name.startswith("test_") or path.name == "conftest.py"


def _is_ingest(module: str) -> bool:
    return module == "ingest" or module.startswith("ingest.")


def private_imports(path: Path, source: str, root: Path = REPO) -> Iterator[str]:
    """Each import in ``source`` that reaches past the public surface, as ``file:line: why``.

    :param path: the file, for the messages.
    :param source: its text.
    :param root: messages name ``path`` relative to this folder.
    :returns: one message per offending import or attribute.
    """
    allowed = dict(PUBLIC)
    if _is_test_module(path):
        testing = importlib.import_module(TESTING)
        allowed[TESTING] = frozenset(n for n in dir(testing) if not n.startswith("_"))
    where = path.relative_to(root)
    tree = ast.parse(source, filename=str(path))
    bound: set[str] = set()  # local names bound to the ingest package by `import ingest`
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _is_ingest(alias.name):
                    continue
                if alias.name not in allowed:
                    yield f"{where}:{node.lineno}: import {alias.name}"
                elif alias.name == "ingest":
                    bound.add(alias.asname or "ingest")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not _is_ingest(node.module):
                continue
            names = ", ".join(alias.name for alias in node.names)
            statement = f"from {node.module} import {names}"
            if node.module not in allowed:
                yield f"{where}:{node.lineno}: {statement} (module {node.module} is private)"
                continue
            undeclared = [a.name for a in node.names if a.name not in allowed[node.module]]
            if undeclared:
                yield (
                    f"{where}:{node.lineno}: {statement} "
                    f"({', '.join(undeclared)} not in {node.module}.__all__)"
                )
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr not in PUBLIC["ingest"]
        ):
            yield f"{where}:{node.lineno}: {node.value.id}.{node.attr} (not in ingest.__all__)"


def plugin_files() -> list[Path]:
    return sorted(path for root in PLUGIN_ROOTS for path in root.rglob("*.py"))


def test_plugins_import_only_the_public_surface() -> None:
    files = plugin_files()
    assert len(files) > 20  # the walk really found the plugins
    problems = [
        problem
        for path in files
        for problem in private_imports(path, path.read_text("utf-8"))
    ]
    assert not problems, "private imports in plugins:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ingest.model import Document\n", "from ingest.model import Document (module"),
        ("import ingest.session\n", "import ingest.session"),
        ("from ingest import hookspecs\n", "(hookspecs not in ingest.__all__)"),
        ("from ingest.workers import Dispatcher, dispatch\n", "(dispatch not in"),
        ("import ingest as i\ni.manager.build_manager()\n", "i.manager (not in ingest.__all__)"),
        ("from ingest.testing import Runner\n", "module ingest.testing is private"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from ingest.config import Settings\n",
            "plug.py:3: from ingest.config import Settings",
        ),
        ("def f():\n    from ingest.cli import main\n", "plug.py:2: from ingest.cli"),
    ],
)
def test_a_private_import_is_named_with_file_and_line(
    tmp_path: Path, source: str, expected: str
) -> None:
    (problem,) = private_imports(tmp_path / "plug.py", source, tmp_path)
    assert problem.startswith("plug.py:") and expected in problem, problem


def test_public_imports_pass(tmp_path: Path) -> None:
    source = (
        "import ingest\nfrom ingest import Document, Session, Settings, hookimpl\n"
        "from ingest.workers import Dispatcher, ExecutorBackend\n"
        "from ingest_plugins.pdf_common import check_pdf_magic\n"
        "ingest.run\n"
    )
    assert list(private_imports(tmp_path / "plug.py", source, tmp_path)) == []
    testing = "from ingest.testing import PipelineRun, Runner\n"
    assert list(private_imports(tmp_path / "test_plug.py", testing, tmp_path)) == []


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_declared_name_resolves(module: str) -> None:
    namespace = importlib.import_module(module)
    exported = list(namespace.__all__)
    assert len(exported) == len(set(exported)), "a name is listed twice"
    missing = [name for name in exported if getattr(namespace, name, None) is None]
    assert not missing, f"{module}.__all__ names that do not resolve: {missing}"


def test_lazy_names_are_declared_and_documented() -> None:
    """Every lazily loaded name is in ``__all__``, and a plugin author can read what it is."""
    lazy = set(ingest._LAZY)
    assert lazy <= set(ingest.__all__)
    for name in sorted(lazy | set(ingest.workers.__all__)):
        source = ingest if name in lazy else ingest.workers
        value = getattr(source, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Sessoin'"):
        _ = ingest.Sessoin  # type: ignore[attr-defined]
