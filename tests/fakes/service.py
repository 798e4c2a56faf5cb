"""A fake service used in a ``with`` block: started on entry, stopped on exit."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Service:
    """Subclasses start their processes in `start` and end them in `stop`."""

    def start(self) -> Self:
        """Start the service; returns it."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the service."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        """Start on entering a ``with`` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving a ``with`` block."""
        self.stop()
