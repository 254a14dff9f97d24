"""The Dask executor (``--executor dask``): the same run, on a Dask cluster.

``ingest run papers/ --executor dask --scheduler tcp://host:8786`` sends the documents to an
existing cluster; ``--executor dask`` alone starts a ``LocalCluster`` on this machine (one
single-threaded worker process per ``run.workers``, or per CPU).

What stays as in a local run, and why:

* Scheduling is :class:`ingest.workers.dispatch.Dispatcher`'s, over a pool of Dask futures
  (:mod:`.driver`, :mod:`.pool`; each future carries a small batch of tasks, which pays the
  cluster's per-task cost once): the same page-range sharding, a bounded window of
  documents in flight, the same per-task deadlines. Sinks and the cache stay on the
  driver; outcomes stream back in completion order (a batch's together).
* On every Dask worker each task runs under our own supervisor
  (:class:`ingest.workers.pool.WorkerPool`, one worker process per Dask thread; :mod:`.remote`),
  so a document that hangs, bloats or crashes is killed with its process group and fails
  with reason ``timeout``, ``memory`` or ``crash`` exactly as it would locally, and the Dask
  worker itself survives it. Dask cannot interrupt a running task; our supervisor can.
* A Dask worker that dies mid-task (killed, lost machine) has its tasks rescheduled by the
  scheduler; one that keeps dying gives ``KilledWorker``, which fails the document with reason
  ``crash``. No document is dropped.

This module only declares the settings and the hooks: it is imported by every worker
process of every run that names the plugin, so Dask itself is imported only when a backend
starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ingest import PluginError, hookimpl
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from collections.abc import Callable

    from ingest import IngestPluginManager, Settings

    from ingest_plugins.dask_executor.driver import DaskBackend

NAME = "dask"

#: What to install when Dask is missing.
EXTRA_HINT = "pip install 'ingest[dask]'"


class DaskSettings(BaseModel):
    """Settings of the dask executor (``--executor dask``)."""

    model_config = ConfigDict(extra="forbid")

    scheduler: str | None = Field(
        default=None,
        description="Address of a running Dask scheduler (tcp://host:8786); empty to start "
        "a LocalCluster on this machine.",
    )
    ship_bytes: bool = Field(
        default=False,
        description="Send each file's bytes to the workers instead of its path (no shared "
        "filesystem needed).",
    )
    connect_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the scheduler and a first worker."
    )
    local_memory_limit: str | None = Field(
        default=None,
        description="Memory limit of each LocalCluster worker, as Dask takes it (4GiB, "
        "auto); empty for Dask's default (RAM shared equally).",
    )


def require_distributed() -> None:
    """Fail at start, in one line, when Dask's ``distributed`` cannot be imported.

    :raises PluginError: naming the extra to install.
    """
    try:
        importlib.import_module("distributed")
    except ImportError as exc:
        raise PluginError(
            f"the dask executor needs Dask's distributed package ({exc}): {EXTRA_HINT}"
        ) from None


@hookimpl
def ingest_register_settings(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Declare the ``dask`` settings section."""
    register(NAME, DaskSettings)


@hookimpl
def ingest_configure(settings: Settings, role: str) -> None:
    """On the driver of a run that will use Dask, check that Dask is installed, before any
    source is collected."""
    if role == "driver" and settings.run.executor == NAME and settings.run.workers != 0:
        require_distributed()


@hookimpl
def ingest_executor(
    name: str, settings: Settings, manager: IngestPluginManager
) -> DaskBackend | None:
    """Provide the Dask backend when asked for ``dask``."""
    if name != NAME:
        return None
    require_distributed()
    from ingest_plugins.dask_executor.driver import DaskBackend

    return DaskBackend(manager, settings)
