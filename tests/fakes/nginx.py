"""Debian's real nginx, configured like the NGINX Home Assistant SSL proxy add-on.

The add-on (home-assistant/addons, ``nginx_proxy``) renders its nginx.conf
from its options at every start: a default server that rejects handshakes
for other names (``ssl_reject_handshake on``), and a server for ``domain``
with ``ssl_certificate /ssl/<certfile>`` and ``ssl_certificate_key
/ssl/<keyfile>`` that proxies plain HTTP to Home Assistant's port. It reads
the files only when it starts: a renewed certificate is served after a
restart (or the add-on's daily reload). This runs the same nginx on a free
port of 127.0.0.1 with the same shape of configuration (no dhparam, no port
80 redirect, no cloudflare or customize includes); ``scripts/setup`` unpacks
Debian's package.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import os
from pathlib import Path
import shutil
import socket
import time

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0

_CONFIG = """\
daemon off;
master_process off;
error_log stderr;
pid {run}/nginx.pid;

events {{
    worker_connections 64;
}}

http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    server_tokens off;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers off;

    server {{
        server_name _;
        listen {host}:{port} ssl default_server;
        ssl_reject_handshake on;
        return 444;
    }}

    server {{
        server_name {domain};
        ssl_session_timeout 1d;
        ssl_session_tickets off;
        ssl_certificate {ssl_dir}/{certfile};
        ssl_certificate_key {ssl_dir}/{keyfile};
        listen {host}:{port} ssl;
        proxy_buffering off;

        location / {{
            proxy_pass http://{host}:{upstream_port};
            proxy_set_header Host $http_host;
            proxy_redirect http:// https://;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def find_nginx() -> str | None:
    """``$SRA_NGINX``, the venv's link (scripts/setup), PATH or the cache."""
    repo = Path(__file__).resolve().parents[2]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    candidates = [
        os.environ.get("SRA_NGINX"),
        str(repo / ".venv" / "bin" / "nginx"),
        shutil.which("nginx"),
        str(cache / "secure-remote-access" / "nginx" / "usr" / "sbin" / "nginx"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


@dataclass
class NginxProxyAddon:
    """The add-on's nginx: started and stopped like the add-on's container."""

    ssl_dir: Path
    run_dir: Path
    upstream_port: int
    options: dict[str, object] = field(
        default_factory=lambda: {
            "domain": "myhome.duckdns.org",
            "certfile": "fullchain.pem",
            "keyfile": "privkey.pem",
        }
    )
    port: int = field(default_factory=free_port)
    starts: int = 0
    last_error: str = ""
    _process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        """The nginx process runs."""
        return self._process is not None and self._process.returncode is None

    def _write_config(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "nginx.conf"
        config.write_text(
            _CONFIG.format(
                run=self.run_dir,
                host=HOST,
                port=self.port,
                ssl_dir=self.ssl_dir,
                upstream_port=self.upstream_port,
                **self.options,
            )
        )
        return config

    async def start(self) -> bool:
        """Render the configuration, start nginx; False when it exits instead.

        Waits until it listens (or has exited), as the add-on's container
        reports started once its service runs.
        """
        binary = find_nginx()
        assert binary, "nginx not found: run scripts/setup"
        self.starts += 1
        config = await asyncio.to_thread(self._write_config)
        log = self.run_dir / "error.log"
        with log.open("ab") as output:
            self._process = await asyncio.create_subprocess_exec(
                binary,
                "-e",
                "stderr",
                "-p",
                str(self.run_dir),
                "-c",
                str(config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=output,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                break
            if await asyncio.to_thread(_accepts, self.port):
                return True
            await asyncio.sleep(0.05)
        await self.stop()
        return False

    async def stop(self) -> None:
        """Stop nginx (the container stops)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.terminate()
        if await process.wait():
            log = await asyncio.to_thread((self.run_dir / "error.log").read_text)
            self.last_error = log.strip().splitlines()[-1] if log.strip() else ""
