"""Serve N local TLS endpoints from a separate process (so the servers' work is
not measured in the client's event loop).

Arguments: COUNT BUNDLE_PATH. Prints the ports as one JSON line once all listen;
serves until stdin closes.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import ssl
import sys
import tempfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes import certs


async def serve(count: int, bundle: Path) -> None:
    """Start ``count`` TLS servers for 127.0.0.1 and wait for stdin to close."""
    certs.shared_pki().write_bundle(bundle)
    leaf = certs.issue(["localhost", "127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = leaf.write(Path(tmp))
        context.load_cert_chain(cert_path, key_path)
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=context)
        for _ in range(count)
    ]
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    print(json.dumps(ports), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), Path(sys.argv[2])))
