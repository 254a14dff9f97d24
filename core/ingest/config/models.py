"""The settings models: the core sections, :class:`Settings`, and plugin sections.

Import them from :mod:`ingest.config`. Every model forbids unknown keys and validates
assignments; :class:`Settings` copies itself safely (:meth:`Settings.with_overrides`) and
pickles even when built with plugin sections, because workers receive it.
"""

from __future__ import annotations

import importlib
import pickle
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self, final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)

from ingest.config import schema, sources
from ingest.errors import ConfigError

_SINK = re.compile(r"[a-z0-9_]+:.+")
_SECTION_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _one_or_many(value: object) -> object:
    # `plugins: ocr` in a file means a list of one; refusing it would only annoy.
    return [value] if isinstance(value, str) else value


def _check_sink(value: str) -> str:
    if not _SINK.fullmatch(value):
        raise ValueError(
            f"a sink is 'scheme:target' (e.g. 'jsonl:out.jsonl' or 'sqlite:corpus.db'), the "
            f"scheme made of lower-case letters, digits and '_'; got {value!r}"
        )
    return value


def _check_plugin(value: str) -> str:
    if not value.strip() or value.strip() == "no:":
        raise ValueError(f"a plugin is a name, a dotted module path or 'no:NAME'; got {value!r}")
    return value.strip()


_StrList = Annotated[list[str], BeforeValidator(_one_or_many)]
_PluginList = Annotated[
    list[Annotated[str, AfterValidator(_check_plugin)]], BeforeValidator(_one_or_many)
]
_SinkList = Annotated[
    list[Annotated[str, AfterValidator(_check_sink)]], BeforeValidator(_one_or_many)
]


class _Section(BaseModel):
    # Unknown keys are typos until proven otherwise (STYLE.md); assignments are validated so
    # `settings.chunk.size = -1` fails where it is written, not deep inside a worker.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


@final
class CollectSettings(_Section):
    """What to ingest."""

    inputs: _StrList = Field(
        default_factory=list, description="Files, folders and globs to ingest."
    )
    patterns: _StrList = Field(
        default_factory=lambda: ["*.pdf"],
        description="File name globs that a folder walk picks up.",
    )
    case_sensitive: bool = Field(
        default=False,
        description="Match patterns case-sensitively; by default `*.pdf` takes `A.PDF` too.",
    )
    select: str | None = Field(
        default=None, description="Keep only paths matching this pytest -k style expression."
    )
    follow_symlinks: bool = Field(
        default=True, description="Follow symbolic links while walking folders."
    )


@final
class ExtractSettings(_Section):
    """How text comes out of a PDF."""

    extractor: str = Field(default="pdfium", description="Name of the extractor plugin.")
    fallback: _StrList = Field(
        default_factory=lambda: ["pypdf"],
        description="Extractors tried in order when the extractor fails.",
    )
    password: SecretStr | None = Field(
        default=None,
        description="Password for encrypted PDFs (the empty user password is always tried first).",
    )
    min_chars_per_page: int = Field(
        default=16, ge=0, description="A page with fewer usable characters is flagged needs_ocr."
    )


@final
class ChunkSettings(_Section):
    """How text is cut into chunks."""

    unit: Literal["chars", "words"] = Field(
        default="chars", description="What size and overlap count."
    )
    size: int = Field(default=1200, gt=0, description="Length of a chunk, in units.")
    # validate_default: `-o chunk.size=100` must be checked against the default overlap too.
    overlap: int = Field(
        default=150,
        ge=0,
        validate_default=True,
        description="Units shared by consecutive chunks; below size.",
    )
    by: Literal["size", "section"] = Field(
        default="size",
        description="size: cut by size alone; section: also break at every heading, keep "
        "table rows whole and repeat a table's header row in the chunks that continue it.",
    )

    @field_validator("overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("size")  # absent when size itself was invalid
        if isinstance(size, int) and value >= size:
            raise ValueError(
                f"must be smaller than chunk.size ({size}), got {value}: "
                "lower chunk.overlap or raise chunk.size"
            )
        return value


@final
class EmbedSettings(_Section):
    """Vectors for the chunks (off unless an embedder is named)."""

    embedder: str | None = Field(
        default=None,
        description="Name of the embedder plugin (e.g. wordllama); empty: no vectors.",
    )
    model: str | None = Field(
        default=None, description="Model of the embedder; empty: the embedder's default."
    )
    dim: int | None = Field(
        default=None,
        gt=0,
        description="Vector size, where the model allows several; empty: the model's own.",
    )
    batch_size: int = Field(
        default=256, gt=0, le=65536, description="Chunk texts per call of the embedder."
    )


@final
class RunSettings(_Section):
    """How documents are processed."""

    workers: int | None = Field(
        default=None, ge=0, description="Worker count: empty for one per CPU, 0 to run in-process."
    )
    executor: str = Field(default="process", description="Name of the executor plugin.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds allowed per document (floor).")
    timeout_per_page: float = Field(
        default=2.0, ge=0, description="Seconds added to the timeout for each page."
    )
    max_memory: ByteSize | None = Field(
        default=None, description="Memory cap per worker, e.g. 2GiB; empty for none."
    )
    maxfail: int = Field(
        default=0, ge=0, description="Stop after this many failed documents; 0 never."
    )
    batch_size: int = Field(
        default=16, gt=0, description="Documents per batch handed to the sinks."
    )
    prune: bool = Field(
        default=False,
        description="Remove from the sinks the records of files under the inputs that no "
        "longer exist.",
    )


@final
class CacheSettings(_Section):
    """What was already ingested, so reruns skip it."""

    dir: str = Field(default=".ingest_cache", description="Folder of the cache.")
    enabled: bool = Field(
        default=True, description="Skip documents that are unchanged and ingested."
    )


def _section_field(section: type[_Section]) -> Any:
    # Typed Any: `Field(default_factory=SomeModel)` confuses mypy without pydantic's plugin.
    return Field(default_factory=section, description=section.__doc__)


class Settings(_Section):
    """The configuration of a run; plugins' sections are added by :func:`build_settings_model`.

    Settings pickle (workers receive them) and :meth:`with_overrides` gives an independent,
    validated copy.
    """

    plugins: _PluginList = Field(
        default_factory=list,
        description="Extra plugins to load, by entry point name or dotted module path; "
        "`no:NAME` blocks one.",
    )
    collect: CollectSettings = _section_field(CollectSettings)
    extract: ExtractSettings = _section_field(ExtractSettings)
    transforms: _StrList = Field(
        default_factory=lambda: [
            "normalize", "dehyphenate", "strip_headers", "structure", "chunk", "dedup"
        ],
        description="Transform plugins applied to each document, in order.",
    )
    format: Literal["text", "markdown"] = Field(
        default="text",
        description="What chunks are cut from: the pages' plain text, or their Markdown "
        "(headings, lists, tables; made by the structure step).",
    )
    chunk: ChunkSettings = _section_field(ChunkSettings)
    embed: EmbedSettings = _section_field(EmbedSettings)
    sinks: _SinkList = Field(
        default_factory=lambda: ["jsonl:ingest-out.jsonl"],
        description="Where records go, each as `scheme:target`.",
    )
    run: RunSettings = _section_field(RunSettings)
    cache: CacheSettings = _section_field(CacheSettings)
    progress: Literal["auto", "bar", "log", "json", "none"] = Field(
        default="auto", description="How progress is shown; auto picks a bar on a terminal."
    )
    progress_interval: float = Field(
        default=5.0, gt=0, description="Seconds between two progress lines of `progress: log`."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] | None = Field(
        default=None,
        description="Level of ingest's log, any case (`--log-level`); wins over `LOG_LEVEL`, "
        "then `-v`/`-q`; empty to leave it to them.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def with_overrides(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied, sharing nothing mutable with ``self``.

        A mapping merges into the nested section (``chunk={"size": 10}`` keeps
        ``chunk.overlap``); any other value, a model included, replaces the field.

        :param changes: top-level settings (core fields or plugin sections) to change.
        :returns: a new instance of the same class; ``self`` is never modified.
        :raises ConfigError: a change names an unknown key or fails validation.
        """
        # Not model_copy(update=...): it neither validates nor copies deeply.
        plain = {
            key: value.model_dump(round_trip=True) if isinstance(value, BaseModel) else value
            for key, value in changes.items()
        }
        data = sources.deep_merge(self.model_dump(round_trip=True), plain)
        try:
            return type(self).model_validate(data)
        except ValidationError as exc:
            problems = schema.validation_problems(exc, type(self))
            raise schema.config_error(problems, "invalid settings override") from None

    def with_dotted(self, changes: Mapping[str, Any]) -> Self:
        """Like :meth:`with_overrides`, with dotted keys: ``{"chunk.size": 10}``.

        :param changes: dotted keys to already typed values (no text parsing).
        :returns: a new, independent instance.
        :raises ConfigError: a key is malformed or unknown, or a value is invalid.
        """
        layer = sources.Layer()
        for key, value in changes.items():
            parts = key.split(".")
            if not all(parts):
                raise ConfigError(f"{key!r} is not a dotted settings key like chunk.size")
            layer.set(parts, value, "")
        return self.with_overrides(**layer.data)

    def __reduce__(self) -> tuple[Any, ...]:
        # Classes from build_settings_model cannot be found by name in a worker process; send
        # the import paths of their sections instead, and rebuild the class there.
        return (_blank_settings, (_class_spec(type(self)),), self.__getstate__())


# -- plugin sections -------------------------------------------------------------------------

_SectionKey = tuple[tuple[str, type[BaseModel]], ...]
_BUILT: dict[_SectionKey, type[Settings]] = {}
_SECTIONS_OF: dict[type[Settings], _SectionKey] = {}


def build_settings_model(sections: Mapping[str, type[BaseModel]]) -> type[Settings]:
    """The Settings class with one extra field per plugin section.

    The same sections (same names, classes and order) give the same class, so instances
    compare and pickle consistently.

    :param sections: section name (``ocr``) to the plugin's pydantic model; the field's
        default is the model's defaults (required if the model has required fields).
    :returns: :class:`Settings` itself when there are no sections, else a subclass.
    :raises ConfigError: a name collides with a core setting or is not a lower-case
        identifier, or a section is not a pydantic model class.
    """
    key: _SectionKey = tuple(sections.items())
    if not key:
        return Settings
    if key in _BUILT:
        return _BUILT[key]
    fields: dict[str, Any] = {}
    for name, section in key:
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            raise ConfigError(f"plugin section {name!r}: {section!r} is not a pydantic model class")
        if name in Settings.model_fields:
            raise ConfigError(
                f"plugin section {name!r} collides with the core setting {name!r}; "
                "the plugin must name its section differently"
            )
        if not _SECTION_NAME.fullmatch(name) or hasattr(Settings, name):
            raise ConfigError(
                f"plugin section {name!r}: a section name must be a lower-case identifier "
                "that is not a Settings attribute"
            )
        doc = (section.__doc__ or f"Settings of the {name} plugin.").strip().splitlines()[0]
        required = any(info.is_required() for info in section.model_fields.values())
        if required:
            fields[name] = (section, Field(description=doc))
        else:
            fields[name] = (section, Field(default_factory=section, description=doc))
    model: type[Settings] = create_model(
        "Settings", __base__=Settings, __module__=__name__, __doc__=Settings.__doc__, **fields
    )
    _BUILT[key] = model
    _SECTIONS_OF[model] = key
    return model


def _import_object(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module_name)
    for attribute in qualname.split("."):
        target = getattr(target, attribute)
    return target


def _class_spec(cls: type[Settings]) -> type[Settings] | tuple[tuple[str, str], ...]:
    if cls not in _SECTIONS_OF:
        return cls  # importable by name: pickle it by reference
    spec = []
    for name, section in _SECTIONS_OF[cls]:
        path = f"{section.__module__}:{section.__qualname__}"
        try:
            found = _import_object(path)
        except Exception:  # any failure means the same thing: a worker could not import it
            found = None
        if found is not section:
            raise pickle.PicklingError(
                f"cannot pickle settings: the model {path} of plugin section {name!r} cannot be "
                "imported under that name; define it at module level so workers can rebuild it"
            )
        spec.append((name, path))
    return tuple(spec)


def _blank_settings(spec: type[Settings] | tuple[tuple[str, str], ...]) -> Settings:
    """Unpickling helper: an uninitialised instance that ``__setstate__`` then fills."""
    if isinstance(spec, type):
        cls = spec
    else:
        cls = build_settings_model({name: _import_object(path) for name, path in spec})
    return cls.__new__(cls)
