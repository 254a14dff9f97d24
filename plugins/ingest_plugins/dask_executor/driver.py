"""The driver's side of the Dask executor: the cluster, and a pool of Dask futures.

:class:`DaskBackend` connects to ``dask.scheduler`` (or starts a ``LocalCluster``), registers
the run's :class:`~.remote.IngestWorkerPlugin` on every worker, and runs
:class:`ingest.workers.dispatch.Dispatcher` over a :class:`~.pool.DaskPool`: the Dispatcher still
decides what to run (page ranges, fallbacks, merging, deadlines, the window of documents in
flight); the pool only turns its tasks into Dask futures (a few tasks per future, see
:mod:`.pool`) and their results back into answers, as they complete. Sinks and the cache
never leave the driver.
"""

from __future__ import annotations

import logging
import pickle
import sys
import uuid
from collections.abc import Generator
from typing import TYPE_CHECKING

from distributed import Client, LocalCluster
from ingest import UsageError
from ingest.workers import Dispatcher, Limits, document_plugins

from ingest_plugins.dask_executor.pool import DaskPool
from ingest_plugins.dask_executor.remote import IngestWorkerPlugin, memory_cap_of
from ingest_plugins.process import worker_count

if TYPE_CHECKING:
    from ingest import Document, Failure, IngestPluginManager, Settings, Source
    from ingest.workers import SourceFeed

    from ingest_plugins.dask_executor import DaskSettings

logger = logging.getLogger("ingest.dask")


class DaskBackend:
    """Documents dispatched to a Dask cluster, each task supervised on its worker.

    :param manager: the driver's plugin manager (its specs are sent to the workers).
    :param settings: the run's settings, with the ``dask`` section.
    """

    #: As the process backend: the longest documents start first (see :mod:`ingest.workers.feed`).
    largest_first = True

    def __init__(self, manager: IngestPluginManager, settings: Settings) -> None:
        self._settings = settings
        self._manager = manager
        self._dask: DaskSettings = getattr(settings, "dask")  # noqa: B009 - a plugin section
        self._plugin = IngestWorkerPlugin(
            specs=list(manager.specs),
            settings=pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL),
            sys_path=list(sys.path),
            expected_plugins=document_plugins(manager),
        )
        self._plugin_name = f"ingest-{uuid.uuid4().hex}"
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None
        self._registered = False
        self._pool: DaskPool | None = None
        self.limits: Limits | None = None

    def start(self) -> None:
        """Nothing before the run: connecting (or starting a LocalCluster) happens in
        :meth:`run`, so a run that finds nothing to do never touches the cluster."""

    def run(self, feed: SourceFeed) -> Generator[tuple[Source, Document | Failure], None, None]:
        """Yield each source with its outcome, in completion order; close at the end.

        :raises UsageError: the scheduler cannot be reached, or the workers cannot set up
            the run (plugins or settings they cannot load).
        """
        try:
            client = self._connect(feed.total)
            threads = self._setup(client)
            # The pool takes more tasks than there are threads (it sends them in batches);
            # the deadline of a task starts only when its worker's supervisor takes it.
            self._pool = DaskPool(client, self._plugin_name, threads, self._dask.ship_bytes)
            self.limits = self._limits(client, threads, window=self._pool.capacity)
            yield from Dispatcher(self._pool, self.limits).run(feed)
            logger.info(
                "%d ingest tasks sent in %d Dask tasks (at most %d per Dask task)",
                self._pool.tasks_sent,
                self._pool.batches_sent,
                self._pool.largest_batch,
            )
        finally:
            self.close()

    def close(self) -> None:
        """Cancel work in flight, remove the run's setup from the workers, disconnect, and
        stop the LocalCluster if this backend started it. Idempotent."""
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            if self._pool is not None:
                self._pool.cancel()
            if self._registered:
                try:
                    client.unregister_worker_plugin(self._plugin_name)
                except Exception as exc:  # a dead cluster has nothing left to clean up
                    logger.debug("could not remove %s from the workers: %s", self._plugin_name, exc)
            client.close()
        if cluster is not None:
            cluster.close()

    # -- start ------------------------------------------------------------------------------

    def _connect(self, documents: int) -> Client:
        """The client of the scheduler, or of a LocalCluster of at most one worker per
        document (``documents``)."""
        timeout = self._dask.connect_timeout
        address = self._dask.scheduler
        if address:
            try:
                self._client = Client(address, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise UsageError(
                    f"cannot reach the Dask scheduler {address} (setting dask.scheduler) within "
                    f"{timeout:g}s (dask.connect_timeout): {exc}"
                ) from exc
        else:
            self._cluster = LocalCluster(
                n_workers=min(worker_count(self._settings), max(1, documents)),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                memory_limit=self._dask.local_memory_limit or "auto",
                silence_logs=logging.ERROR,
            )
            self._client = Client(self._cluster, timeout=timeout, set_as_default=False)
        return self._client

    def _setup(self, client: Client) -> int:
        """Register the run on the workers; return the number of Dask threads to fill."""
        timeout = self._dask.connect_timeout
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError as exc:
            raise UsageError(
                f"the Dask scheduler {client.scheduler.address} has no worker after {timeout:g}s "
                "(dask.connect_timeout): start some with `dask worker ADDRESS`"
            ) from exc
        try:
            client.register_plugin(self._plugin, name=self._plugin_name)
        except Exception as exc:
            raise UsageError(
                f"the Dask workers cannot set up this run: {type(exc).__name__}: {exc} "
                "(ingest and the run's plugins must be installed on every worker)"
            ) from exc
        self._registered = True
        return max(1, sum(client.nthreads().values()))

    def _limits(self, client: Client, threads: int, *, window: int) -> Limits:
        """The Dispatcher's limits: page ranges sized on the real ``threads``, and a
        ``window`` of documents in flight that keeps the batching pool full."""
        # The workers size their own memory caps; the driver names the cap in memory failures
        # that do not, which only means something when every worker uses the same one.
        caps = set(client.run(memory_cap_of, self._plugin_name).values())
        return Limits.from_settings(
            self._settings,
            self._manager,
            workers=threads,
            max_memory=caps.pop() if len(caps) == 1 else None,
            window=window,
        )
