"""A throwaway plugin with a settings section, named only through ``-o plugins=...``."""

from __future__ import annotations

from ingest import hookimpl
from pydantic import BaseModel, ConfigDict


class MyPlugSettings(BaseModel):
    """The ``myplug`` section."""

    model_config = ConfigDict(extra="forbid")

    x: int = 1


@hookimpl
def ingest_register_settings(register: object) -> None:
    register("myplug", MyPlugSettings)  # type: ignore[operator]  # the hook's callback
