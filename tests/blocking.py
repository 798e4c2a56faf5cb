"""Home Assistant's blocking-call detection, strict, for this integration's code.

In tests Home Assistant skips most of its blocking-call guards (file, TLS and
import calls are only checked outside tests). Here every guard of
``homeassistant.block_async_io`` is installed, and a call made on the event
loop's thread from a frame of this integration's package is recorded; the
fixture in ``conftest.py`` fails the test that made it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass, field
import os
from pathlib import Path
import sys
import threading
from typing import Any
from unittest.mock import patch

from homeassistant import block_async_io

import custom_components.secure_remote_access as package

PACKAGE_DIR = package.__path__[0]
MAX_FRAMES = 40


@dataclass
class BlockingCalls:
    """The blocking calls our code made on the event loop."""

    found: list[str] = field(default_factory=list)


def _offender() -> str | None:
    """``file:line`` of the innermost frame of our package on the stack, if any."""
    frame = sys._getframe(2)
    for _ in range(MAX_FRAMES):
        if frame is None:
            return None
        if frame.f_code.co_filename.startswith(PACKAGE_DIR):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def _guard(
    name: str,
    original: Callable[..., Any],
    allowed: Callable[[dict[str, Any]], bool] | None,
    calls: BlockingCalls,
) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if (
            asyncio._get_running_loop() is not None
            and threading.current_thread() is threading.main_thread()
            and (where := _offender()) is not None
            and not (allowed and allowed({"args": args, "kwargs": kwargs}))
        ):
            calls.found.append(f"{name} at {where}")
        return original(*args, **kwargs)

    return guarded


@contextlib.contextmanager
def detect_blocking_calls() -> Iterator[BlockingCalls]:
    """Record blocking calls our package makes in the event loop."""
    calls = BlockingCalls()
    installed: list[tuple[object, str, Any]] = []
    for blocking in block_async_io._BLOCKING_CALLS:
        current = getattr(blocking.object, blocking.function)
        name = f"{getattr(blocking.object, '__name__', blocking.object)}.{blocking.function}"
        setattr(
            blocking.object,
            blocking.function,
            _guard(name, current, blocking.check_allowed, calls),
        )
        installed.append((blocking.object, blocking.function, current))
    try:
        yield calls
    finally:
        for obj, function, original in reversed(installed):
            setattr(obj, function, original)


@contextlib.contextmanager
def guard_event_loop(watched: Path) -> Iterator[list[str]]:
    """Enable Home Assistant's blocking-call detection and watch ``os`` calls.

    Inside, a blocking ``open``, ``Path.read_bytes``, ``SSLContext.load_*``...
    in the event loop thread raises. Yields the list of ``os.open`` /
    ``os.stat`` calls on paths under ``watched`` made in the event loop
    thread (those are not covered by the detection; it must stay empty).
    Write test files before entering, or through the executor.
    """
    block_async_io.enable()
    loop_thread = threading.get_ident()
    calls: list[str] = []
    prefix = str(watched)

    def guarded(real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread and os.fspath(path).startswith(
                prefix
            ):
                calls.append(f"{real.__name__}({path})")
            return real(path, *args, **kwargs)

        return wrapper

    try:
        with (
            patch("os.open", guarded(os.open)),
            patch("os.stat", guarded(os.stat)),
        ):
            yield calls
    finally:
        blocked = block_async_io._BLOCKED_CALLS.calls
        for call in blocked:
            setattr(call.object, call.function, call.original_func)
        blocked.clear()
