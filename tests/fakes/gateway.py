"""What the test gateways share: an aiohttp server on 127.0.0.1 that can vanish."""

from __future__ import annotations

import asyncio
import socket
from typing import ClassVar, Final

from aiohttp import web

HOST: Final = "127.0.0.1"


class LoopbackGateway:
    """A gateway's HTTP server on 127.0.0.1 (no SSDP); subclasses build the app."""

    DESCRIPTION_PATH: ClassVar[str] = "/rootDesc.xml"

    def __init__(self) -> None:
        """Nothing listens until `listen`."""
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()

    @property
    def location(self) -> str:
        """The description URL a client starts from."""
        return f"http://{HOST}:{self.port}{self.DESCRIPTION_PATH}"

    @property
    def running(self) -> bool:
        """Whether the HTTP server listens."""
        return self._runner is not None

    @staticmethod
    def free_port(port: int = 0) -> int:
        """``port``, or a free one on 127.0.0.1 for 0."""
        if port:
            return port
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            free: int = probe.getsockname()[1]
            return free

    async def listen(self, app: web.Application) -> str:
        """Serve ``app`` on `port`; return the location."""
        self._release = asyncio.Event()
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self.port, reuse_address=True).start()
        return self.location

    async def hang(self) -> None:
        """Wait (in a request handler) until the gateway stops."""
        await self._release.wait()

    async def stop(self) -> None:
        """Stop listening (a gateway that disappears); hanging requests end."""
        self._release.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
