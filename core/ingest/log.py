"""Logging set-up for the ``ingest`` logger.

As a library, ingest adds no handler: the application decides where records go. The CLI
alone adds a stderr handler, through :func:`setup_cli_logging`.

One level, set from the first of these that is given, highest first: ``--log-level`` (or
``-o log_level=...``), ``INGEST_LOG_LEVEL``, ``log_level`` in the config file (all three are
the ``log_level`` setting, layered as every setting is), then ``LOG_LEVEL``, read when ingest
is imported. Without any of them the CLI's ``-v``/``-q`` decide, and a library leaves the
level to the application. An invalid ``LOG_LEVEL`` means INFO and is reported once per
process, when a run is prepared (so worker processes, which import ingest too, stay quiet).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Final

__all__ = ["LOGGER_NAME", "apply_log_level", "configure_level_from_env", "setup_cli_logging"]

LOGGER_NAME: Final = "ingest"
ENV_VAR: Final = "LOG_LEVEL"
LEVELS: Final = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
# -v / -q move one step along this scale from WARNING, the CLI's default.
_CLI_SCALE: Final = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
_CLI_DEFAULT_INDEX: Final = 2


def _parse_level(raw: str | None) -> int | None:
    if raw is None:
        return None
    return LEVELS.get(raw.strip().upper())


# The invalid LOG_LEVEL values already reported in this process: each is said once.
_WARNED: set[str] = set()


def configure_level_from_env(
    environ: Mapping[str, str] | None = None, *, warn: bool = True
) -> int:
    """Set the ``ingest`` logger's level from ``LOG_LEVEL``; called when ingest is imported.

    Level names are matched in any case. When ``LOG_LEVEL`` is unset or empty the level is
    left alone, so an application's own configuration (for example the root level) applies.
    An unknown value falls back to INFO and logs one warning naming it. No handler is added.

    :param environ: the environment to read; ``os.environ`` when ``None``.
    :param warn: log the warning for an unknown value (at import it waits for
        :func:`apply_log_level`, which says it once per process).
    :returns: the ``ingest`` logger's effective level afterwards.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_VAR)
    logger = logging.getLogger(LOGGER_NAME)
    if raw is None or not raw.strip():
        return logger.getEffectiveLevel()
    level = _parse_level(raw)
    if level is None:
        logger.setLevel(logging.INFO)
        if warn:
            _warn_bad_env_level(raw)
        return logging.INFO
    logger.setLevel(level)
    return level


def _warn_bad_env_level(raw: str) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    message = "%s=%r is not a log level; using INFO. Use one of: %s"
    args = (ENV_VAR, raw, ", ".join(LEVELS))
    # A mistake in the environment is shown whatever the level (`-q` or log_level=ERROR
    # included): handle() skips the level check that warning() makes.
    logger.handle(logger.makeRecord(LOGGER_NAME, logging.WARNING, __file__, 0, message, args, None))


def apply_log_level(setting: str | None, environ: Mapping[str, str] | None = None) -> int:
    """Set the ``ingest`` logger's level for a run: the ``log_level`` setting, else
    ``LOG_LEVEL``; called by every run (CLI, ``ingest.run``, the pytest fixture).

    :param setting: ``settings.log_level`` (already validated), or ``None``.
    :param environ: the environment the run reads; ``os.environ`` when ``None``.
    :returns: the ``ingest`` logger's effective level afterwards.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_VAR)
    if raw and raw.strip() and _parse_level(raw) is None and raw not in _WARNED:
        _WARNED.add(raw)
        _warn_bad_env_level(raw)
    logger = logging.getLogger(LOGGER_NAME)
    if setting is not None:
        logger.setLevel(LEVELS[setting.upper()])
        return logger.level
    return configure_level_from_env(env, warn=False)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time, so redirected stderr is honoured."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def setup_cli_logging(verbosity: int) -> None:
    """Send ``ingest`` log records to stderr, for the command line only.

    Idempotent: calling it again adjusts the level and never adds a second handler.
    ``verbosity`` is the count of ``-v`` minus the count of ``-q``: 0 shows warnings and
    errors, 1 adds INFO, 2 or more DEBUG; -1 shows only errors, -2 or less only CRITICAL.
    A valid ``LOG_LEVEL`` wins over ``verbosity``, and the ``log_level`` setting over both
    (:func:`apply_log_level`, once the settings are read).

    :param verbosity: how much detail to show, relative to the default.
    """
    logger = logging.getLogger(LOGGER_NAME)
    level = _parse_level(os.environ.get(ENV_VAR))
    if level is None:
        index = min(max(_CLI_DEFAULT_INDEX - verbosity, 0), len(_CLI_SCALE) - 1)
        level = _CLI_SCALE[index]
    logger.setLevel(level)
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def driver_log_levels() -> dict[str, int]:
    """The levels set on the driver's loggers, for a worker to send only what would show."""
    levels = {"": logging.getLogger().getEffectiveLevel()}
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels
