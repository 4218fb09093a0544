"""A stop signal ends the demo even when Python swallows the handler's exception."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import weakref
from collections.abc import Iterator

import pytest

from app import demo


@pytest.fixture(autouse=True)
def _no_signals_yet() -> Iterator[None]:
    demo._received.clear()
    yield
    demo._received.clear()


class _Node:
    pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowing itself
def test_a_signal_handled_inside_a_weakref_callback_still_stops_the_demo() -> None:
    """CI saw SIGTERM arrive while the garbage collector ran a weakref callback: the raise was
    printed as 'Exception ignored' and the demo ran on to exit 0."""
    node = _Node()
    watch = weakref.ref(node, lambda _ref: demo._raise_stopped(signal.SIGTERM, None))
    del node
    gc.collect()  # the callback raised _Stopped; Python printed it and went on
    assert watch() is None

    with pytest.raises(demo._Stopped) as stopped:
        demo._unless_stopped()
    assert stopped.value.signum == signal.SIGTERM


def test_no_signal_lets_the_demo_go_on() -> None:
    demo._unless_stopped()


def test_a_signal_during_a_stage_cancels_it_and_then_stops_the_demo() -> None:
    """In a stage a signal cancels its task (its clean-up runs as for any cancellation), and the
    demo's own handler is back once the stage is over."""
    cleaned = []

    async def stage() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGHUP)
        try:
            await asyncio.sleep(30)
        finally:
            cleaned.append(True)

    previous = signal.signal(signal.SIGHUP, demo._raise_stopped)
    try:
        with pytest.raises(demo._Stopped) as stopped:
            demo._run_stage(stage())
        assert signal.getsignal(signal.SIGHUP) is demo._raise_stopped
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert stopped.value.signum == signal.SIGHUP
    assert cleaned == [True]


def test_a_stage_without_a_signal_returns_its_result() -> None:
    async def stage() -> int:
        await asyncio.sleep(0)
        return 7

    assert demo._run_stage(stage()) == 7
