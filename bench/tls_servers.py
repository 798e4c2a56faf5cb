"""Serve N local TLS endpoints from a separate process (so the servers' work is
not measured in the client's event loop).

Arguments: COUNT BUNDLE_PATH [DELAY_MS]. Each connection waits DELAY_MS before
the server reads the ClientHello, so the client sees its handshake take one
simulated round trip longer. Prints the ports as one JSON line once all
listen; serves until stdin closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import contextlib
import json
import logging
from pathlib import Path
import ssl
import sys
import tempfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes import certs

type Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _handler(context: ssl.SSLContext, delay: float) -> Handler:
    """A connection handler: wait ``delay``, then do the server side of TLS."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            await writer.start_tls(context)
            await reader.read()  # until the client closes or aborts
        except OSError, ssl.SSLError:
            pass
        finally:
            writer.transport.abort()

    return handle


async def serve(count: int, bundle: Path, delay: float) -> None:
    """Start ``count`` TLS servers for 127.0.0.1 and wait for stdin to close."""
    certs.shared_pki().write_bundle(bundle)
    leaf = certs.issue(["localhost", "127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = leaf.write(Path(tmp))
        context.load_cert_chain(cert_path, key_path)
    handler = _handler(context, delay)
    servers = [
        await asyncio.start_server(handler, "127.0.0.1", 0, backlog=200)
        for _ in range(count)
    ]
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for server in servers:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


if __name__ == "__main__":
    # StreamReaderProtocol.eof_received returns True, which asyncio's TLS layer
    # reports as a warning for every client that closes: not news here.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    delay_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2]), delay_ms / 1000))
