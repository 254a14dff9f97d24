"""Inputs in object stores: ``ingest run s3://bucket/prefix/`` and any other fsspec URL.

The driver only lists: each object whose name matches ``collect.patterns`` becomes a
:class:`~ingest.Source` whose ``path`` is its URL, with the size and a stamp (ETag, version
id, modification time) the store reports, and no content id. Each worker copies the object
it is given straight from the store (``ingest_fetch``) and the core hashes the copy, so the
driver never reads a document's bytes, whatever the backend (with ``--executor dask`` it
sends the URL alone). A rerun knows the content id of an object whose size and stamp are
unchanged, and skips it without reading it.

Why fsspec: one interface over S3 (s3fs), Google Cloud Storage (gcsfs), Azure (adlfs),
HTTP and local files, with each store's own way of finding credentials (for S3 botocore's:
the ``AWS_*`` variables, ``~/.aws`` profiles, instance roles), and the library the Python
data tools already use for this; ``remote.storage_options`` passes options to it.

Errors are one line naming the URL: an input that cannot be listed (no such bucket, access
denied, no network) stops the run before anything is written (as a missing folder does);
an object that cannot be read fails alone, after ``remote.retries`` more tries when the
network failed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import logging
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ingest import PDF_MEDIA_TYPE, DocumentError, Failure, Source, UsageError, hookimpl
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

if TYPE_CHECKING:
    from collections.abc import Callable

    from fsspec import AbstractFileSystem
    from ingest import Settings

NAME = "remote"

#: What to install when fsspec or a store's filesystem is missing.
EXTRA_HINT = "pip install 'ingest[s3]'"

logger = logging.getLogger("ingest.remote")

_GLOB_CHARS = frozenset("*?[")
# As the local collector: the PDF header may follow some junk within the first kilobyte.
_MAGIC_WINDOW = 1024

#: Option names whose values are credentials: masked in ``ingest config`` and its errors.
_SECRET_WORDS = ("secret", "token", "password", "passwd", "credential", "key", "sas", "auth")

#: What stores call the facts that change when an object is replaced, by kind.
_STAMP_FIELDS = (
    ("etag", ("ETag", "etag", "md5Hash")),
    ("version", ("VersionId", "version_id", "generation")),
    ("mtime", ("LastModified", "last_modified", "updated", "mtime", "Last-Modified")),
)


class RemoteSettings(BaseModel):
    """Settings of the object-store inputs (``ingest run s3://bucket/prefix/``)."""

    model_config = ConfigDict(extra="forbid")

    storage_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options of each store's fsspec filesystem, by URL scheme ({s3: "
        "{endpoint_url: ..., anon: true}}); values of credential-like keys are masked. "
        "Credentials otherwise come from where the store's library looks (environment, "
        "profiles).",
    )
    retries: int = Field(
        default=3,
        ge=0,
        description="Tries more when reading an object fails on the network; then that "
        "document fails alone.",
    )
    retry_wait: float = Field(
        default=0.5, ge=0, description="Seconds before the first retry, doubled each time."
    )

    @field_validator("storage_options", mode="after")
    @classmethod
    def _mask_secrets(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {scheme: _masked(options) for scheme, options in value.items()}


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _masked(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with every credential-like string value wrapped in ``SecretStr``."""
    masked: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping):
            masked[key] = _masked(value)
        elif isinstance(value, str) and _is_secret(key):
            masked[key] = SecretStr(value)
        else:
            masked[key] = value
    return masked


def _plain(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options as the filesystem takes them (secrets unwrapped)."""
    plain: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping):
            plain[key] = _plain(value)
        elif isinstance(value, SecretStr):
            plain[key] = value.get_secret_value()
        else:
            plain[key] = value
    return plain


@hookimpl
def ingest_register_settings(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Declare the ``remote`` settings section."""
    register(NAME, RemoteSettings)


def is_store_url(text: str) -> bool:
    """Whether ``text`` is a URL that fsspec reads (or might, once it is installed)."""
    protocol, sep, _ = text.partition("://")
    if not sep:
        return False
    try:
        fsspec = importlib.import_module("fsspec")
    except ImportError:
        return True  # filesystem() says what to install
    return protocol in fsspec.available_protocols()


def filesystem(url: str, settings: Settings) -> AbstractFileSystem:
    """The fsspec filesystem of ``url``'s scheme, with ``remote.storage_options``.

    :raises UsageError: fsspec, or the scheme's library, is not installed, or the scheme
        is unknown.
    """
    protocol = url.partition("://")[0]
    try:
        fsspec = importlib.import_module("fsspec")
    except ImportError:
        raise UsageError(f"{url}: reading object stores needs fsspec: {EXTRA_HINT}") from None
    options: RemoteSettings = getattr(settings, NAME)
    try:
        return fsspec.filesystem(protocol, **_plain(options.storage_options.get(protocol, {})))
    except ImportError as exc:
        raise UsageError(f"{url}: reading {protocol}:// URLs needs {exc}: {EXTRA_HINT}") from None
    except ValueError as exc:
        raise UsageError(f"{url}: no fsspec filesystem for {protocol}://: {exc}") from None


def stamp_of(info: Mapping[str, Any]) -> str | None:
    """What the store says of an object's version, as one string; ``None`` when it says
    nothing that changes with its bytes (its content is then read on every run)."""
    parts = []
    for kind, names in _STAMP_FIELDS:
        for name in names:
            value = info.get(name)
            if value not in (None, ""):
                parts.append(f"{kind}={value}")
                break
    return ";".join(parts) or None


@hookimpl
def ingest_configure(settings: Settings, role: str) -> None:
    """For a run whose inputs are in a store, import the store's library now.

    In the driver, only the module is imported (about 0.85 s for s3fs), no filesystem made:
    making one starts fsspec's I/O thread, and the workers' template is forked from the
    driver before collection only while it has a single thread; forked workers then start
    with the library loaded. In a worker, its filesystem is made too, while the driver
    lists: not during the first document.
    """
    for url in settings.collect.inputs:
        if not is_store_url(url):
            continue
        with contextlib.suppress(Exception):  # the driver reports it, once, when it lists
            if role == "worker":
                filesystem(url, settings)
            else:
                importlib.import_module("fsspec").get_filesystem_class(url.partition("://")[0])
        return


# -- collection (driver) ---------------------------------------------------------------------


@hookimpl
def ingest_collect(path: str, settings: Settings) -> list[Source | Failure] | None:
    """List the objects under a store URL (a prefix, a key, or a glob); see the hookspec."""
    if not is_store_url(path):
        return None
    fs = filesystem(path, settings)
    # Listings are cached per filesystem object, and the object lives as long as the
    # process: a second run in the same process must see the store as it is now.
    fs.invalidate_cache()
    try:
        entries, direct = _list(fs, path)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"{path}: {_describe(exc, listing=True)}") from exc
    patterns = settings.collect.patterns
    found: list[Source | Failure] = []
    for name in sorted(entries):
        info = entries[name]
        url = fs.unstrip_protocol(name)
        basename = PurePosixPath(name).name
        if not any(fnmatch.fnmatch(basename, pattern) for pattern in patterns):
            if direct:
                found.append(
                    Failure(
                        source=url,
                        reason="unsupported",
                        message=f"no plugin collects this file (patterns: {patterns})",
                    )
                )
            continue
        found.append(
            Source(
                path=url,
                content_id="",
                size=int(info.get("size") or 0),
                media_type=PDF_MEDIA_TYPE,
                stamp=stamp_of(info),
            )
        )
    return found


def _list(fs: AbstractFileSystem, url: str) -> tuple[dict[str, dict[str, Any]], bool]:
    """The files ``url`` names, by name, and whether it named one file directly."""
    if _GLOB_CHARS.intersection(url.partition("://")[2]):
        matched = fs.glob(url, detail=True)
        return {n: i for n, i in matched.items() if i.get("type") != "directory"}, False
    info = fs.info(url)
    if info.get("type") == "directory":
        return fs.find(url, detail=True), False
    return {info["name"]: info}, True


def _describe(exc: BaseException, *, listing: bool) -> str:
    """One line for a store error: what it means, then the library's own words."""
    words = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, FileNotFoundError):
        what = "not found (no such bucket, container or key)" if listing else "no such object"
        return f"{what} ({words})"
    if isinstance(exc, PermissionError):
        return f"access denied: check the credentials and the bucket's policy ({words})"
    return words


# -- reading (worker) ------------------------------------------------------------------------


@hookimpl
def ingest_fetch(source: Source, settings: Settings, folder: Path) -> Path | None:
    """Copy the object at ``source.path`` (a URL) into ``folder``; see the hookspec.

    A read that fails on the network is tried again ``remote.retries`` times; a missing
    object or a denied access is not (it would fail the same way).
    """
    url = str(source.path)
    if not is_store_url(url):
        return None
    try:
        fs = filesystem(url, settings)
    except UsageError as exc:
        raise DocumentError("unreadable", str(exc).removeprefix(f"{url}: "), plugin=NAME) from None
    options: RemoteSettings = getattr(settings, NAME)
    target = folder / (PurePosixPath(url.partition("://")[2]).name or "document")
    attempts = options.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            # One GET streamed to the file: no HEAD first, no ranged reads of fs.open.
            fs.get_file(url, str(target))
            break
        except (FileNotFoundError, PermissionError) as exc:
            raise DocumentError("unreadable", _describe(exc, listing=False), plugin=NAME) from None
        except Exception as exc:
            done = target.stat().st_size if target.exists() else 0
            if attempt == attempts:
                raise DocumentError(
                    "unreadable",
                    f"read failed {attempts} times (remote.retries {options.retries}), "
                    f"the last after {done} of {source.size} bytes: "
                    f"{_describe(exc, listing=False)}",
                    plugin=NAME,
                ) from None
            logger.info("%s: read failed (%s), trying again", url, exc)
            time.sleep(options.retry_wait * 2 ** (attempt - 1))
    if source.media_type == PDF_MEDIA_TYPE:
        with target.open("rb") as handle:
            if b"%PDF-" not in handle.read(_MAGIC_WINDOW):
                raise DocumentError(
                    "not-a-pdf", "no %PDF- header in the first kilobyte", plugin=NAME
                )
    return target
