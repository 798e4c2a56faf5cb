"""A timestamping TCP proxy in front of Pebble's ACME port.

Every client talks to the CA through it (Pebble builds its URLs from the
request's Host, so the directory points back at the proxy). It records when
the first byte of a client reaches it and when the last byte of the CA's
answers leaves it: a client's issuance time without its own start-up, the
same way for every client (TLS is passed through untouched).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class TimestampProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; timestamps the traffic."""

    def __init__(self, target_host: str, target_port: int) -> None:
        """Prepare; ``start`` listens."""
        self._target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="bench-ca-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self.port = 0
        self.first_request: float | None = None
        self.last_response: float | None = None
        self.connections = 0

    def reset(self) -> None:
        """Forget the timestamps (between two runs)."""
        self.first_request = self.last_response = None
        self.connections = 0

    @property
    def elapsed(self) -> float | None:
        """From the first client byte to the last CA byte, if both were seen."""
        if self.first_request is None or self.last_response is None:
            return None
        return self.last_response - self.first_request

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        from_client: bool,
    ) -> None:
        try:
            while data := await reader.read(65536):
                now = time.perf_counter()
                if from_client and self.first_request is None:
                    self.first_request = now
                if not from_client:
                    self.last_response = now
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    async def _handle(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            ca_r, ca_w = await asyncio.open_connection(*self._target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pipe(client_r, ca_w, from_client=True),
            self._pipe(ca_r, client_w, from_client=False),
        )

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def start(self) -> int:
        """Listen on a free port; return it."""
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(
            timeout=10
        )
        return self.port

    def stop(self) -> None:
        """Stop listening and end the thread."""
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
