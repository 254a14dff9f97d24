"""Exception types that ingest raises on purpose.

Only ``cli.py`` maps these to exit codes; library users catch them directly.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error ingest raises on purpose."""


class UsageError(IngestError):
    """A mistake in how ingest was called or configured: the CLI prints it and exits 4."""


class ConfigError(UsageError, ValueError):
    """Invalid configuration: names the file, the line where known, and each bad field."""


class PluginError(UsageError):
    """A plugin could not be found, loaded or validated."""


class WriteError(IngestError):
    """A sink or the cache could not write: the disk is full, a file too large, read-only.

    The run stops; what was committed before stays, and the cache knows exactly that, so a
    rerun once there is room writes the rest. The CLI prints the message and exits 6.

    :param message: names what could not write (the sink and its target, or the cache), and
        why.
    :param result: the run's result so far (a :class:`~ingest.result.RunResult`), once the
        session ended.
    """

    def __init__(self, message: str, *, result: object | None = None) -> None:
        super().__init__(message)
        self.result = result


class DocumentError(IngestError):
    """A single document could not be processed; it fails alone, the run goes on.

    :param reason: a short machine-readable reason (``error``, ``encrypted``, ``timeout``,
        ``memory``, ``crash``, ``not-a-pdf``, ``unreadable``...).
    :param message: what went wrong, for a human.
    :param plugin: the plugin that raised, when known.
    """

    def __init__(self, reason: str, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.plugin = plugin

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments are lost by the default exception pickling, and these cross
        # process boundaries from the workers.
        return (_rebuild_document_error, (self.reason, self.message, self.plugin))


def _rebuild_document_error(reason: str, message: str, plugin: str | None) -> DocumentError:
    return DocumentError(reason, message, plugin=plugin)
