"""Tests for ``ingest.bridge``: the sync-to-async bridge.

Each test uses its own ``PersistentLoopExecutor`` unless it tests the module-level default,
so a failure in one cannot leave a broken loop behind for the next.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import inspect
import os
import select
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest import bridge as execution
from ingest.bridge import (
    PersistentLoopExecutor,
    get_executor,
    register_pool,
    run_sync,
    run_sync_many,
    shutdown_executors,
)
from ingest.bridge import handoff as _handoff

# Generous bound for calls that should finish at once: a hang fails fast instead of
# waiting for pytest-timeout, and a slow shared machine never trips it.
PATIENCE = 30.0

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


needs_uvloop = pytest.mark.skipif(
    importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
)


class Boom(Exception):
    pass


class Fatal(BaseException):
    """A BaseException that is neither KeyboardInterrupt nor SystemExit."""


LOOPS = ["asyncio", pytest.param("uvloop", marks=needs_uvloop)]


@pytest.fixture(params=LOOPS)
def executor(request: pytest.FixtureRequest) -> Iterator[PersistentLoopExecutor]:
    """An executor on each loop: every semantic test runs on asyncio's loop and on uvloop's."""
    ex = PersistentLoopExecutor(name="ingest-loop-test", cancel_grace=5.0, loop=request.param)
    try:
        yield ex
    finally:
        ex.shutdown()


async def answer(value: object = 42) -> object:
    return value


async def loop_thread_ident() -> int:
    return threading.get_ident()


async def running_loop_and_thread() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    return asyncio.get_running_loop(), threading.current_thread()


def test_returns_the_result_and_runs_as_a_real_task(executor: PersistentLoopExecutor) -> None:
    async def inside() -> tuple[bool, str, int]:
        async with asyncio.timeout(PATIENCE):
            task = asyncio.current_task()
            await asyncio.sleep(0)
        return task is not None, threading.current_thread().name, threading.get_ident()

    is_task, thread_name, ident = executor.run_sync(inside(), timeout=PATIENCE)
    assert is_task
    assert thread_name == "ingest-loop-test"
    assert ident != threading.get_ident()
    assert executor.run_sync(answer("again")) == "again"


def test_loop_thread_is_a_named_daemon_started_once_by_concurrent_first_calls() -> None:
    """The loop starts lazily, once, under a lock."""
    ex = PersistentLoopExecutor(name="ingest-loop-once")
    barrier = threading.Barrier(8)
    idents: list[int] = []

    def first_call() -> None:
        barrier.wait()
        idents.append(ex.run_sync(loop_thread_ident(), timeout=PATIENCE))

    try:
        assert not [t for t in threading.enumerate() if t.name == "ingest-loop-once"]
        threads = [threading.Thread(target=first_call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        loops = [t for t in threading.enumerate() if t.name == "ingest-loop-once"]
        assert len(loops) == 1
        assert loops[0].daemon
        assert set(idents) == {loops[0].ident}
    finally:
        ex.shutdown()


def test_reraises_the_coroutines_exception_with_its_traceback(
    executor: PersistentLoopExecutor,
) -> None:
    async def fails_deep_inside() -> None:
        await asyncio.sleep(0)
        raise Boom("from the coroutine")

    with pytest.raises(Boom, match="from the coroutine") as excinfo:
        executor.run_sync(fails_deep_inside())
    frames = [frame.name for frame in traceback.extract_tb(excinfo.value.__traceback__)]
    assert "fails_deep_inside" in frames


@pytest.mark.parametrize("exc_type", [Fatal, KeyboardInterrupt, SystemExit])
def test_base_exceptions_come_back_and_the_loop_survives(
    executor: PersistentLoopExecutor, exc_type: type[BaseException]
) -> None:
    """asyncio re-raises KeyboardInterrupt/SystemExit out of run_forever; ours must not die."""
    before = executor.run_sync(loop_thread_ident())

    async def raises() -> None:
        raise exc_type("inside")

    with pytest.raises(exc_type) as excinfo:
        executor.run_sync(raises(), timeout=PATIENCE)
    assert "raises" in [frame.name for frame in traceback.extract_tb(excinfo.value.__traceback__)]
    assert executor.run_sync(loop_thread_ident(), timeout=PATIENCE) == before
    assert executor.run_sync(answer(), timeout=PATIENCE) == 42


def test_works_when_the_calling_thread_already_runs_a_loop(
    executor: PersistentLoopExecutor,
) -> None:
    async def async_code_calling_sync_code() -> tuple[object, int, int]:
        # A sync helper called from async code (or a notebook cell) blocks its own loop.
        value = executor.run_sync(answer("nested"), timeout=PATIENCE)
        ran_on = executor.run_sync(loop_thread_ident(), timeout=PATIENCE)
        return value, ran_on, threading.get_ident()

    value, ran_on, caller = asyncio.run(async_code_calling_sync_code())
    assert value == "nested"
    assert ran_on != caller


def test_call_from_the_loop_thread_raises_at_once_and_closes_the_coroutine(
    executor: PersistentLoopExecutor,
) -> None:
    inner = answer()

    async def calls_run_sync_from_inside() -> None:
        executor.run_sync(inner)

    # The timeout turns a deadlock into a TimeoutError instead of a hung test.
    with pytest.raises(RuntimeError, match="would wait for itself"):
        executor.run_sync(calls_run_sync_from_inside(), timeout=PATIENCE)
    assert inspect.getcoroutinestate(inner) == inspect.CORO_CLOSED

    async def batch_from_inside() -> None:
        executor.run_sync_many([answer(), answer()])

    with pytest.raises(RuntimeError, match="would wait for itself"):
        executor.run_sync(batch_from_inside(), timeout=PATIENCE)

    async def shutdown_from_inside() -> None:
        executor.shutdown()

    with pytest.raises(RuntimeError, match="own thread"):
        executor.run_sync(shutdown_from_inside(), timeout=PATIENCE)


def test_contextvars_are_copied_in_and_changes_do_not_leak_back(
    executor: PersistentLoopExecutor,
) -> None:
    async def read_then_change() -> str:
        seen = request_id.get()
        request_id.set("changed inside")
        return seen

    token = request_id.set("doc-17")
    try:
        assert executor.run_sync(read_then_change()) == "doc-17"
        assert request_id.get() == "doc-17"
        assert executor.run_sync_many([read_then_change(), read_then_change()]) == ["doc-17"] * 2
        assert request_id.get() == "doc-17"
    finally:
        request_id.reset(token)


def _cancellable(started: threading.Event, seen: list[str]) -> Coroutine[Any, Any, None]:
    async def waits_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    return waits_forever()


def test_timeout_cancels_the_task_and_waits_for_its_finally(
    executor: PersistentLoopExecutor,
) -> None:
    started, seen = threading.Event(), []
    with pytest.raises(TimeoutError, match=r"waits_forever did not finish within 0\.05 s"):
        executor.run_sync(_cancellable(started, seen), timeout=0.05)
    assert started.is_set()
    assert seen == ["cancelled", "finally"]
    assert executor.run_sync(answer()) == 42


def test_a_coroutine_that_swallows_cancellation_does_not_hang_the_caller() -> None:
    """The caller waits at most ``cancel_grace`` for cancellation, then gives up."""
    ex = PersistentLoopExecutor(name="ingest-loop-stubborn", cancel_grace=0.1)
    let_go = threading.Event()
    state: list[str] = []

    async def stubborn() -> None:
        while not let_go.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                state.append("ignored a cancel")
        state.append("done")

    try:
        with pytest.raises(TimeoutError):
            ex.run_sync(stubborn(), timeout=0.05)
        # Had the caller waited for the coroutine to finish, it would never have returned.
        assert state == ["ignored a cancel"]
    finally:
        let_go.set()
        ex.shutdown()


def test_keyboard_interrupt_in_the_caller_cancels_the_task(
    executor: PersistentLoopExecutor,
) -> None:
    """Ctrl-C while the main thread waits must cancel the coroutine, not orphan it."""
    started, seen = threading.Event(), []
    main = threading.get_ident()

    def interrupt_main_once_started() -> None:
        if started.wait(PATIENCE):
            signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupter = threading.Thread(target=interrupt_main_once_started)
    try:
        interrupter.start()
        with pytest.raises(KeyboardInterrupt):
            executor.run_sync(_cancellable(started, seen), timeout=PATIENCE)
    finally:
        interrupter.join()
        signal.signal(signal.SIGINT, previous)
    assert seen == ["cancelled", "finally"]
    assert executor.run_sync(answer()) == 42


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_fresh_loop() -> None:
    async def where() -> tuple[int, int]:
        return os.getpid(), threading.get_native_id()

    parent_pid, parent_loop_tid = run_sync(where(), timeout=PATIENCE)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process is risky: that is the point here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = 1
        try:
            child_pid, child_loop_tid = run_sync(where(), timeout=10)
            extra = run_sync_many([answer(1), answer(2)], timeout=10)
            os.write(write_end, f"{child_pid} {child_loop_tid} {extra}".encode())
            status = 0
        except BaseException as exc:
            os.write(write_end, f"error {exc!r}".encode())
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], PATIENCE)
        assert ready, "the child did not answer: it probably waited on the parent's dead loop"
        report = os.read(read_end, 1000).decode()
    finally:
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report
    child_pid, child_loop_tid, extra = report.split(" ", 2)
    assert int(child_pid) == pid != parent_pid
    assert int(child_loop_tid) != parent_loop_tid
    assert extra == "[1, 2]"
    assert run_sync(where(), timeout=PATIENCE) == (parent_pid, parent_loop_tid)


async def some_coroutine_function() -> int:
    return 1


def plain_function() -> int:
    return 1


def test_type_error_names_a_coroutine_function_that_was_not_called() -> None:
    unstarted = answer()
    with pytest.raises(TypeError, match=r"coroutine function some_coroutine_function itself"):
        run_sync(some_coroutine_function)
    with pytest.raises(TypeError, match=r"item 1 is the coroutine function some_coroutine"):
        run_sync_many([unstarted, some_coroutine_function])  # type: ignore[list-item]
    # The valid coroutine stays the caller's: neither started nor closed.
    assert inspect.getcoroutinestate(unstarted) == inspect.CORO_CREATED
    unstarted.close()


def test_type_error_names_a_plain_function_and_closes_nothing() -> None:
    def generator() -> Iterator[int]:
        yield 1

    gen = generator()
    with pytest.raises(TypeError, match="callable plain_function"):
        run_sync(plain_function)
    with pytest.raises(TypeError, match="got generator <generator object"):
        run_sync(gen)
    # Not ours to close: the caller can still use it.
    assert next(gen) == 1


@given(st.one_of(st.none(), st.integers(), st.text(max_size=200), st.lists(st.integers())))
def test_type_error_says_what_was_passed(value: object) -> None:
    with pytest.raises(TypeError, match=f"got {type(value).__qualname__} ") as excinfo:
        run_sync(value)
    assert len(str(excinfo.value)) < 200


async def value_after(value: int, yields: int) -> int:
    for _ in range(yields):
        await asyncio.sleep(0)
    return value


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(), st.integers(0, 5)), max_size=60))
def test_run_sync_many_keeps_input_order(
    executor: PersistentLoopExecutor, items: list[tuple[int, int]]
) -> None:
    # Later items often finish first (fewer yields), so order must come from the input.
    coros = [value_after(value, yields) for value, yields in items]
    assert executor.run_sync_many(coros, timeout=PATIENCE) == [value for value, _ in items]


def test_run_sync_many_cancels_the_rest_and_reraises_the_first_exception(
    executor: PersistentLoopExecutor,
) -> None:
    finished: list[str] = []

    async def fails_first() -> None:
        await asyncio.sleep(0)
        raise Boom("first")

    async def slow(name: str) -> None:
        try:
            await asyncio.sleep(PATIENCE)
        finally:
            finished.append(name)

    async def fails_when_cancelled() -> None:
        try:
            await asyncio.sleep(PATIENCE)
        except asyncio.CancelledError:
            raise Boom("second, while being cancelled") from None

    coros = [slow("a"), fails_first(), fails_when_cancelled(), slow("b")]
    with pytest.raises(Boom, match="first"):
        executor.run_sync_many(coros, timeout=PATIENCE)
    # Awaited, not just cancelled: their finally blocks ran before the call returned.
    assert sorted(finished) == ["a", "b"]


def test_run_sync_many_timeout_cancels_everything_unfinished(
    executor: PersistentLoopExecutor,
) -> None:
    started, seen = threading.Event(), []
    coros = [answer(1), _cancellable(started, seen)]
    with pytest.raises(TimeoutError, match="2 coroutines did not finish"):
        executor.run_sync_many(coros, timeout=0.05)
    assert seen == ["cancelled", "finally"]


def test_run_sync_many_of_nothing_is_an_empty_list(executor: PersistentLoopExecutor) -> None:
    assert executor.run_sync_many([]) == []
    assert executor.run_sync_many(iter(())) == []


def test_run_sync_many_keeps_the_loop_alive_after_keyboard_interrupt(
    executor: PersistentLoopExecutor,
) -> None:
    async def interrupts() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executor.run_sync_many([interrupts(), answer()], timeout=PATIENCE)
    assert executor.run_sync_many([answer(1), answer(2)], timeout=PATIENCE) == [1, 2]


def test_a_stray_loop_stop_does_not_strand_later_callers(executor: PersistentLoopExecutor) -> None:
    async def stops_the_loop() -> str:
        asyncio.get_running_loop().stop()
        return "stopped"

    assert executor.run_sync(stops_the_loop(), timeout=PATIENCE) == "stopped"
    assert executor.run_sync(answer(), timeout=PATIENCE) == 42


def test_debug_mode_loop_takes_the_thread_safe_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In debug mode asyncio rejects call_soon from another thread, so creation moves over."""
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    ex = PersistentLoopExecutor(name="ingest-loop-debug", cancel_grace=5.0)
    try:

        async def debug_flag() -> bool:
            return asyncio.get_running_loop().get_debug()

        assert ex.run_sync(debug_flag(), timeout=PATIENCE) is True
        started, seen = threading.Event(), []
        with pytest.raises(TimeoutError):
            ex.run_sync(_cancellable(started, seen), timeout=0.05)
        assert seen == ["cancelled", "finally"]
    finally:
        ex.shutdown()


def test_shutdown_is_idempotent_and_the_next_call_starts_a_fresh_loop() -> None:
    ex = PersistentLoopExecutor(name="ingest-loop-restart")
    first_loop, first_thread = ex.run_sync(running_loop_and_thread())
    ex.shutdown()
    ex.shutdown()
    assert first_loop.is_closed()
    assert not first_thread.is_alive()
    second_loop, second_thread = ex.run_sync(running_loop_and_thread(), timeout=PATIENCE)
    assert second_loop is not first_loop
    assert second_thread.is_alive()
    ex.shutdown()


def test_shutdown_cancels_running_work_and_its_default_executor(
    executor: PersistentLoopExecutor,
) -> None:
    started, seen = threading.Event(), []
    outcome: list[BaseException] = []
    workers: list[threading.Thread] = []

    async def uses_the_default_executor() -> None:
        workers.append(
            await asyncio.get_running_loop().run_in_executor(None, threading.current_thread)
        )

    def caller() -> None:
        try:
            executor.run_sync(_cancellable(started, seen))
        except BaseException as exc:
            outcome.append(exc)

    executor.run_sync(uses_the_default_executor(), timeout=PATIENCE)
    thread = threading.Thread(target=caller)
    thread.start()
    assert started.wait(PATIENCE)
    executor.shutdown()
    thread.join(PATIENCE)
    assert seen == ["cancelled", "finally"]
    assert len(outcome) == 1
    assert isinstance(outcome[0], RuntimeError)
    assert "shut down" in str(outcome[0])
    workers[0].join(PATIENCE)
    assert not workers[0].is_alive()


def test_registered_pools_are_shut_down_with_cancel_futures() -> None:
    ex = PersistentLoopExecutor(name="ingest-loop-pools")
    gate = threading.Event()
    pool = ex.register_pool(ThreadPoolExecutor(max_workers=1))
    running = pool.submit(gate.wait, PATIENCE)
    queued = pool.submit(int, "7")
    try:
        ex.shutdown(wait=False)
        assert queued.cancelled()
        with pytest.raises(RuntimeError, match="shutdown"):
            pool.submit(int, "8")
    finally:
        gate.set()
    assert running.result(PATIENCE) is True


def test_module_level_shutdown_stops_the_default_loop_and_pools_then_restarts() -> None:
    before, _ = run_sync(running_loop_and_thread(), timeout=PATIENCE)
    pool = register_pool(ThreadPoolExecutor(max_workers=1))
    shutdown_executors()
    shutdown_executors()
    assert before.is_closed()
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(int, "1")
    assert get_executor() is execution.get_executor()
    after, _ = run_sync(running_loop_and_thread(), timeout=PATIENCE)
    assert after is not before
    assert run_sync_many([answer(1)], timeout=PATIENCE) == [1]


def test_many_threads_calling_at_once_each_get_their_own_results(
    executor: PersistentLoopExecutor,
) -> None:
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(200):
                expected = offset * 1000 + i
                if executor.run_sync(value_after(expected, i % 3), timeout=PATIENCE) != expected:
                    errors.append(AssertionError(f"wrong result for {expected}"))
            batch = list(range(offset, offset + 50))
            got = executor.run_sync_many([value_after(v, v % 2) for v in batch], timeout=PATIENCE)
            if got != batch:
                errors.append(AssertionError(f"wrong batch for {offset}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_slow_coroutine_outlives_the_liveness_poll(executor: PersistentLoopExecutor) -> None:
    """Waiting longer than the internal poll period must still return the result."""

    async def slower_than_a_poll() -> str:
        deadline = time.monotonic() + _handoff._LIVENESS_POLL_S * 1.5
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return "late"

    assert executor.run_sync(slower_than_a_poll()) == "late"
    assert executor.run_sync(slower_than_a_poll(), timeout=PATIENCE) == "late"


@pytest.mark.parametrize("kind", ["asyncio", pytest.param("uvloop", marks=needs_uvloop)])
def test_the_loop_is_the_one_asked_for(kind: str) -> None:
    ex = PersistentLoopExecutor(name="ingest-loop-kind", loop=kind)
    try:

        async def loop_module() -> str:
            return type(asyncio.get_running_loop()).__module__.split(".")[0]

        assert ex.run_sync(loop_module(), timeout=PATIENCE) == kind
    finally:
        ex.shutdown()


def test_the_environment_picks_the_loop_and_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    monkeypatch.setenv("INGEST_EVENT_LOOP", "asyncio")
    ex = PersistentLoopExecutor(name="ingest-loop-env")
    try:
        assert ex.run_sync(loop_module(), timeout=PATIENCE) == "asyncio"
        ex.shutdown()
        monkeypatch.setenv("INGEST_EVENT_LOOP", "trio")
        coro = loop_module()
        with pytest.raises(ValueError, match=r"INGEST_EVENT_LOOP='trio' is not one of"):
            ex.run_sync(coro, timeout=PATIENCE)
        coro.close()
    finally:
        ex.shutdown()


def test_uvloop_asked_for_but_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail as if uvloop were not installed.
    monkeypatch.setitem(sys.modules, "uvloop", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    ex = PersistentLoopExecutor(name="ingest-loop-missing", loop="uvloop")
    coro = answer()
    try:
        with pytest.raises(RuntimeError, match=r"pip install 'ingest\[uvloop\]'"):
            ex.run_sync(coro, timeout=PATIENCE)
    finally:
        coro.close()
        ex.shutdown()
