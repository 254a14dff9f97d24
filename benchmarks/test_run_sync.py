"""Per-call cost of running a small coroutine from sync code.

Contenders, each over the same two kinds of coroutine (``return 1``; one ``sleep(0)`` then
``return 1``): our ``run_sync`` and ``run_sync_many``, ``asyncio.run`` per call, a new loop per
call in a ThreadPoolExecutor (the design ``run_sync`` replaces), anyio's blocking portal,
asgiref's ``async_to_sync``, and two floors: ``call_soon_threadsafe`` releasing a lock on a
persistent loop thread (the cheapest cross-thread handoff) and a hand-driven ``coro.send``.

``run_sync`` and ``run_sync_many`` run on asyncio's loop here, whatever the default would
pick; the ``*_uvloop`` contenders (run_sync, its floor, anyio's portal) repeat the comparison
on uvloop when it is installed, each against the same loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _harness import KINDS, Results
from anyio.from_thread import BlockingPortal, start_blocking_portal
from asgiref.sync import async_to_sync
from ingest.bridge import PersistentLoopExecutor
from pytest_benchmark.fixture import BenchmarkFixture

Factory = Callable[[], Coroutine[Any, Any, int]]
ROUNDS = 7

# Calls per round: 10,000 where a call costs tens of microseconds; fewer for the contenders
# that cost hundreds, so the whole run stays well under two minutes. Costs are per call.
FAST_CALLS = 10_000
SLOW_CALLS = {"asyncio_run": 1_000, "thread_pool_new_loop": 1_000, "anyio_portal": 2_000}
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
needs_uvloop = pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed")
ASGIREF_CALLS = 500


async def return_one() -> int:
    return 1


async def sleep_then_return_one() -> int:
    await asyncio.sleep(0)
    return 1


FACTORIES: dict[str, Factory] = {"return": return_one, "sleep0": sleep_then_return_one}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _new_loop(uvloop: bool) -> asyncio.AbstractEventLoop:
    if uvloop:
        import uvloop as uv

        return uv.new_event_loop()
    return asyncio.new_event_loop()


@pytest.fixture(scope="session")
def executors() -> Iterator[dict[str, PersistentLoopExecutor]]:
    made = {
        kind: PersistentLoopExecutor(name=f"bench-{kind}", loop=kind)
        for kind in ("asyncio", "uvloop")
    }
    yield made
    for executor in made.values():
        executor.shutdown()


@pytest.fixture(scope="session", params=[False, pytest.param(True, marks=needs_uvloop)])
def loop_thread(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    loop = _new_loop(bool(request.param))
    thread = threading.Thread(target=loop.run_forever, name="bench-floor-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


@pytest.fixture(scope="session", params=[False, pytest.param(True, marks=needs_uvloop)])
def portal(request: pytest.FixtureRequest) -> Iterator[tuple[BlockingPortal, bool]]:
    """anyio's portal on asyncio's loop, and on uvloop's (the flag says which)."""
    uvloop = bool(request.param)
    with start_blocking_portal(backend_options={"use_uvloop": uvloop}) as blocking_portal:
        yield blocking_portal, uvloop


def _suffix(loop: asyncio.AbstractEventLoop | None = None, uvloop: bool = False) -> str:
    if loop is not None:
        uvloop = type(loop).__module__.startswith("uvloop")
    return "_uvloop" if uvloop else ""


def measure(
    benchmark: BenchmarkFixture,
    results: Results,
    name: str,
    kind: str,
    calls: int,
    run: Callable[[int], object],
) -> None:
    benchmark.group = f"{kind}: per round of {calls} calls" if kind != "-" else "floor"
    benchmark.extra_info["calls"] = calls
    benchmark.pedantic(run, args=(calls,), rounds=ROUNDS, warmup_rounds=1, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        results.per_call[(name, kind)] = benchmark.stats.stats.median / calls
        results.runners[(name, kind)] = (run, calls)


@pytest.mark.parametrize("loop", ["asyncio", pytest.param("uvloop", marks=needs_uvloop)])
def test_run_sync(
    benchmark: BenchmarkFixture,
    results: Results,
    calls: Callable[[int], int],
    kind: str,
    loop: str,
    executors: dict[str, PersistentLoopExecutor],
) -> None:
    factory = FACTORIES[kind]
    run_sync = executors[loop].run_sync

    def run(n: int) -> None:
        for _ in range(n):
            run_sync(factory())

    assert run_sync(factory()) == 1
    name = "run_sync" + _suffix(uvloop=loop == "uvloop")
    measure(benchmark, results, name, kind, calls(FAST_CALLS), run)


def test_run_sync_many(
    benchmark: BenchmarkFixture,
    results: Results,
    calls: Callable[[int], int],
    kind: str,
    executors: dict[str, PersistentLoopExecutor],
) -> None:
    factory = FACTORIES[kind]
    run_sync_many = executors["asyncio"].run_sync_many

    def run(n: int) -> None:
        run_sync_many([factory() for _ in range(n)])

    assert run_sync_many([factory(), factory()]) == [1, 1]
    measure(benchmark, results, "run_sync_many", kind, calls(FAST_CALLS), run)


def test_asyncio_run(
    benchmark: BenchmarkFixture, results: Results, calls: Callable[[int], int], kind: str
) -> None:
    factory = FACTORIES[kind]

    def run(n: int) -> None:
        for _ in range(n):
            asyncio.run(factory())

    measure(benchmark, results, "asyncio_run", kind, calls(SLOW_CALLS["asyncio_run"]), run)


def test_thread_pool_new_loop(
    benchmark: BenchmarkFixture, results: Results, calls: Callable[[int], int], kind: str
) -> None:
    factory = FACTORIES[kind]
    with ThreadPoolExecutor(max_workers=1) as pool:

        def run(n: int) -> None:
            for _ in range(n):
                pool.submit(asyncio.run, factory()).result()

        n = calls(SLOW_CALLS["thread_pool_new_loop"])
        measure(benchmark, results, "thread_pool_new_loop", kind, n, run)


def test_anyio_portal(
    benchmark: BenchmarkFixture,
    results: Results,
    calls: Callable[[int], int],
    kind: str,
    portal: tuple[BlockingPortal, bool],
) -> None:
    factory = FACTORIES[kind]
    blocking_portal, uvloop = portal

    def run(n: int) -> None:
        for _ in range(n):
            blocking_portal.call(factory)

    name = "anyio_portal" + _suffix(uvloop=uvloop)
    measure(benchmark, results, name, kind, calls(SLOW_CALLS["anyio_portal"]), run)


def test_asgiref_async_to_sync(
    benchmark: BenchmarkFixture, results: Results, calls: Callable[[int], int], kind: str
) -> None:
    call = async_to_sync(FACTORIES[kind])

    def run(n: int) -> None:
        for _ in range(n):
            call()

    measure(benchmark, results, "asgiref_async_to_sync", kind, calls(ASGIREF_CALLS), run)


def test_floor_threadsafe(
    benchmark: BenchmarkFixture,
    results: Results,
    calls: Callable[[int], int],
    loop_thread: asyncio.AbstractEventLoop,
) -> None:
    """The cheapest cross-thread round trip: wake the loop, have it release a lock."""
    call_soon_threadsafe = loop_thread.call_soon_threadsafe
    allocate_lock = threading.Lock

    def run(n: int) -> None:
        for _ in range(n):
            done = allocate_lock()
            done.acquire()
            call_soon_threadsafe(done.release)
            done.acquire()

    name = "floor_threadsafe" + _suffix(loop_thread)
    measure(benchmark, results, name, "-", calls(FAST_CALLS), run)


def test_floor_send(
    benchmark: BenchmarkFixture, results: Results, calls: Callable[[int], int], kind: str
) -> None:
    """The coroutine itself, driven by hand in this thread: no loop, no handoff."""
    factory = FACTORIES[kind]

    def run(n: int) -> None:
        for _ in range(n):
            coro = factory()
            try:
                while True:
                    coro.send(None)
            except StopIteration:
                pass

    measure(benchmark, results, "floor_send", kind, calls(FAST_CALLS), run)


def test_targets(results: Results) -> None:
    """The speed goals, as ratios of per-call medians from this same run.

    A ratio over its target is measured once more with the two contenders interleaved; the
    target fails only if that re-check fails too.
    """
    rows = [(t, kind, ratio) for t, kind, ratio in results.ratios() if kind in t.kinds]
    if any(ratio is None for _, _, ratio in rows):
        pytest.skip("run the whole benchmarks/ directory (with timing enabled) to check targets")
    failed = []
    for target, kind, ratio in rows:
        if ratio is not None and ratio > target.max_ratio:
            again = results.recheck(target, kind)
            if again is None or again > target.max_ratio:
                failed.append(f"{target.label} [{kind}]: {ratio:.3f}, re-check {again}")
    assert not failed, "\n".join([*failed, "", *results.table()])
