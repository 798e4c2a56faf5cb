"""Faults in the middle of writing the certificate files: an error or a crash at step k.

`FaultyOs` stands in for the ``os`` module of ``protocol/pairfiles.py`` and ``protocol/fileops.py``. Only in
a thread that is writing a pair (`FaultyOs.writing`), each call of a
file-changing function is one *step*; a plan makes step ``k`` raise
``OSError(EIO)`` or *crash*: the thread stops right there (as if the process
had died) until the test has restarted the entry, then it unwinds with
`SimulatedCrash`, which none of our ``except`` clauses catch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass
import errno
import os
import threading
from typing import Any

STEP_FUNCTIONS = frozenset(
    {"open", "write", "fsync", "replace", "unlink", "fchmod", "mkdir", "chmod"}
)


class SimulatedCrash(BaseException):
    """The process died at this step: no cleanup code of ours runs."""


@dataclass
class Plan:
    """What to do at ``step`` of the next write: ``error`` or ``crash``."""

    step: int
    kind: str


class FaultyOs:
    """The ``os`` module, with step counting and one planned fault per write."""

    def __init__(self, on_crash: Callable[[], None]) -> None:
        """``on_crash`` is called (from the writing thread) when a crash begins."""
        self._local = threading.local()
        self._on_crash = on_crash
        self.plan: Plan | None = None
        #: The steps of the last write: function name and arguments.
        self.last_steps: list[tuple[str, tuple[Any, ...]]] = []
        self.crashed = threading.Event()
        self.resume = threading.Event()
        self.unwound = threading.Event()

    def __getattr__(self, name: str) -> Any:
        """Every attribute of ``os``; step functions counted while writing."""
        value = getattr(os, name)
        if name not in STEP_FUNCTIONS:
            return value

        def step(*args: Any, **kwargs: Any) -> Any:
            steps = getattr(self._local, "steps", None)
            if steps is not None:
                steps.append((name, args))
                self._maybe_fail(len(steps) - 1)
            return value(*args, **kwargs)

        return step

    def _maybe_fail(self, index: int) -> None:
        plan = self.plan
        if plan is None or plan.step != index:
            return
        self.plan = None
        if plan.kind == "error":
            raise OSError(errno.EIO, "Input/output error (injected)")
        self.crashed.set()
        self._on_crash()
        self.resume.wait()
        self.resume.clear()
        self.crashed.clear()
        self.unwound.set()
        raise SimulatedCrash(index)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Count the steps of the write running in this thread."""
        self._local.steps = []
        try:
            yield
        finally:
            self.last_steps = self._local.steps
            self._local.steps = None
