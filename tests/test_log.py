"""Tests for ``ingest.log``: LOG_LEVEL and the CLI's stderr handler."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ingest.log import LEVELS, LOGGER_NAME, configure_level_from_env, setup_cli_logging


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def restore_ingest_logger() -> Iterator[logging.Logger]:
    """Start from a bare ``ingest`` logger (other tests drive the CLI) and put it back."""
    logger = logging.getLogger(LOGGER_NAME)
    level, handlers = logger.level, list(logger.handlers)
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    try:
        yield logger
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers


def any_case(name: str) -> st.SearchStrategy[str]:
    flips = st.lists(st.booleans(), min_size=len(name), max_size=len(name))
    return flips.map(
        lambda f: "".join(c.lower() if low else c for c, low in zip(name, f, strict=True))
    )


@given(
    st.sampled_from(sorted(LEVELS)).flatmap(lambda name: st.tuples(st.just(name), any_case(name)))
)
def test_every_level_name_in_any_case_sets_the_level(named: tuple[str, str]) -> None:
    name, spelled = named
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.NOTSET)
    assert configure_level_from_env({"LOG_LEVEL": f" {spelled} "}) == LEVELS[name]
    assert logger.level == LEVELS[name]


not_a_level = st.text(min_size=1, max_size=30).filter(
    lambda raw: raw.strip() != "" and raw.strip().upper() not in LEVELS
)


@given(not_a_level)
def test_an_invalid_value_falls_back_to_info_with_one_warning_naming_it(raw: str) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.ERROR)
    capture = ListHandler()
    logger.addHandler(capture)
    try:
        assert configure_level_from_env({"LOG_LEVEL": raw}) == logging.INFO
    finally:
        logger.removeHandler(capture)
    assert logger.level == logging.INFO
    [record] = capture.records
    assert record.levelno == logging.WARNING
    assert repr(raw) in record.getMessage()


def test_invalid_value_warning_reaches_caplog(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        configure_level_from_env({"LOG_LEVEL": "verbose"})
    assert [r.getMessage() for r in caplog.records] == [
        "LOG_LEVEL='verbose' is not a log level; using INFO. "
        "Use one of: DEBUG, INFO, WARNING, ERROR, CRITICAL"
    ]


@pytest.mark.parametrize("environ", [{}, {"LOG_LEVEL": ""}, {"LOG_LEVEL": "   "}])
def test_unset_or_empty_leaves_the_level_to_the_application(environ: dict[str, str]) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.NOTSET)
    assert configure_level_from_env(environ) == logging.getLogger().getEffectiveLevel()
    assert logger.level == logging.NOTSET


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "error")
    assert configure_level_from_env() == logging.ERROR


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"} | env
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120
    )


def test_importing_ingest_adds_no_handler() -> None:
    done = _run_python("import ingest, logging; print(logging.getLogger('ingest').handlers)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_importing_with_a_bad_level_adds_no_handler_and_still_warns() -> None:
    code = (
        "import logging, ingest, ingest.log, ingest.bridge, ingest.progress\n"
        "ingest.log.configure_level_from_env()\n"
        "print(logging.getLogger('ingest').handlers, logging.getLogger().handlers)"
    )
    done = _run_python(code, LOG_LEVEL="LOUD")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] []"
    # Python's last-resort handler shows the warning even though no handler was added.
    assert "LOG_LEVEL='LOUD' is not a log level" in done.stderr


@pytest.mark.parametrize(
    ("verbosity", "level"),
    [
        (-5, logging.CRITICAL),
        (-2, logging.CRITICAL),
        (-1, logging.ERROR),
        (0, logging.WARNING),
        (1, logging.INFO),
        (2, logging.DEBUG),
        (9, logging.DEBUG),
    ],
)
def test_cli_verbosity_sets_the_level(
    monkeypatch: pytest.MonkeyPatch, verbosity: int, level: int
) -> None:
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    setup_cli_logging(verbosity)
    assert logging.getLogger(LOGGER_NAME).level == level


def test_cli_logging_is_idempotent_and_writes_to_the_current_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    logger = logging.getLogger(LOGGER_NAME)
    setup_cli_logging(0)
    setup_cli_logging(1)
    assert len(logger.handlers) == 1
    logging.getLogger("ingest.some.plugin").info("extracted %d pages", 3)
    logging.getLogger("ingest.some.plugin").debug("not shown at -v")
    assert capsys.readouterr().err == "INFO ingest.some.plugin: extracted 3 pages\n"


def test_a_valid_log_level_wins_over_cli_verbosity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "Debug")
    setup_cli_logging(-2)
    assert logging.getLogger(LOGGER_NAME).level == logging.DEBUG
    monkeypatch.setenv("LOG_LEVEL", "nonsense")
    setup_cli_logging(-1)
    assert logging.getLogger(LOGGER_NAME).level == logging.ERROR
