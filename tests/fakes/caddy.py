"""Run Caddy's ``acme_server`` (smallstep's ACME code) as a second real CA.

Caddy 2.11 from Debian (``scripts/setup`` puts it in the cache) serves an ACME
directory on a free 127.0.0.1 port over HTTPS with its own internal CA, and
validates dns-01 through its ``resolvers`` option: here a `DnsRelay` in front
of challtestsrv's DNS server, which can answer late or not at all, as a home's
split-horizon resolver (a Pi-hole) does. Like every smallstep-based CA it
keeps a failed challenge pending with an ``error`` until the client POSTs it
again. Its ACME database can be wiped (`reset_accounts`) to play a private CA
that was reset: every account is gone, the CA's root stays.

The relay runs in a thread on a plain socket: Caddy queries it while the
test's event loop is busy with the order.
"""

from __future__ import annotations

import _socket  # the C socket: pytest-socket's guard must not block the fakes
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any, Self

from .pebble import HOST, PebbleStartError, _free_port, _port_open
from .service import Service

DNS_TXT = 16


def find_caddy() -> str | None:
    """Caddy from $CADDY_BIN, the venv, PATH or the cache (scripts/setup)."""
    candidates = []
    if explicit := os.environ.get("CADDY_BIN"):
        candidates.append(Path(explicit))
    repo = Path(__file__).resolve().parents[2]
    candidates.append(repo / ".venv" / "bin" / "caddy")
    if found := shutil.which("caddy"):
        candidates.append(Path(found))
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    candidates.append(
        cache / "secure-remote-access" / "caddy" / "usr" / "bin" / "caddy"
    )
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _question(packet: bytes) -> tuple[str, int, int]:
    """The query name, type and the end of the question section of a DNS query."""
    labels: list[str] = []
    offset = 12
    while (length := packet[offset]) != 0:
        labels.append(
            packet[offset + 1 : offset + 1 + length].decode("ascii", "replace")
        )
        offset += 1 + length
    qtype = int.from_bytes(packet[offset + 1 : offset + 3], "big")
    return ".".join(labels).lower(), qtype, offset + 5


def _empty_answer(query: bytes, end: int) -> bytes:
    """NOERROR without answers (what a resolver that has not seen the value says)."""
    flags = 0x8180 | (int.from_bytes(query[2:4], "big") & 0x0100)
    header = query[:2] + flags.to_bytes(2, "big") + b"\x00\x01" + b"\x00" * 6
    return header + query[12:end]


@dataclass
class DnsRelay(Service):
    """A UDP resolver in front of ``upstream`` (``ip:port``) that can lag.

    ``late`` TXT queries of each name are answered empty before the real
    answer is passed on; with ``silent`` every TXT query is. With ``ttl``
    (seconds) a TXT answer is kept and given again until it is that old, as a
    caching resolver (a Pi-hole, a router) does with DuckDNS's 60 s TTL.
    ``queries`` counts the TXT queries per name.
    """

    upstream: str
    late: int = 0
    silent: bool = False
    ttl: float = 0.0
    queries: dict[str, int] = field(default_factory=dict)
    _cache: dict[str, tuple[float, bytes]] = field(
        init=False, default_factory=dict, repr=False
    )
    port: int = field(init=False, default=0)
    _socket: Any = field(init=False, default=None, repr=False)
    _thread: threading.Thread | None = field(init=False, default=None, repr=False)

    @property
    def address(self) -> str:
        """``ip:port`` of the relay."""
        return f"{HOST}:{self.port}"

    def start(self) -> Self:
        """Listen on a free UDP port and relay in a thread."""
        self._socket = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        self._socket.bind((HOST, 0))
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop relaying."""
        if self._socket is not None:
            self._socket.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                query, client = self._socket.recvfrom(4096)
            except OSError:
                return  # closed
            try:
                answer = self._answer(query)
            except IndexError, OSError:
                continue  # a query that is no query, an upstream that is gone
            self._socket.sendto(answer, client)

    def _answer(self, query: bytes) -> bytes:
        name, qtype, end = _question(query)
        if qtype == DNS_TXT:
            count = self.queries[name] = self.queries.get(name, 0) + 1
            if self.silent or count <= self.late:
                return _empty_answer(query, end)
            cached = self._cache.get(name)
            if cached is not None and time.monotonic() < cached[0]:
                return query[:2] + cached[1][2:]  # the query's ID, the old answer
        answer = self._ask_upstream(query)
        if qtype == DNS_TXT and self.ttl:
            self._cache[name] = (time.monotonic() + self.ttl, answer)
        return answer

    def _ask_upstream(self, query: bytes) -> bytes:
        host, port = self.upstream.rsplit(":", 1)
        upstream = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        upstream.settimeout(2)
        try:
            upstream.sendto(query, (host, int(port)))
            answer: bytes = upstream.recvfrom(4096)[0]
        finally:
            upstream.close()
        return answer


@dataclass
class CaddyAcmeServer(Service):
    """Caddy's acme_server on a free 127.0.0.1 port, validating dns-01 via ``resolver``.

    Certificates live 12 hours (Caddy's default); the directory has no
    ``meta`` (no terms, no profiles, no EAB), no ARI.
    """

    resolver: str
    startup_timeout: float = 20.0
    port: int = field(init=False, default=0)
    workdir: Path | None = field(init=False, default=None)
    _process: subprocess.Popen[bytes] | None = field(init=False, default=None)

    @property
    def directory_url(self) -> str:
        """The ACME directory URL."""
        return f"https://{HOST}:{self.port}/acme/local/directory"

    @property
    def ca_bundle_path(self) -> Path:
        """Caddy's internal root: it signs the HTTPS listener and the certificates."""
        assert self.workdir is not None
        return self.workdir / "storage" / "pki" / "authorities" / "local" / "root.crt"

    def start(self) -> Self:
        """Write the configuration and start Caddy."""
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="caddy-"))
            self.port = _free_port()
        config = {
            "admin": {"disabled": True},
            "storage": {"module": "file_system", "root": str(self.workdir / "storage")},
            "apps": {
                "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
                "tls": {
                    "certificates": {"automate": [HOST]},
                    "automation": {
                        "policies": [
                            {"subjects": [HOST], "issuers": [{"module": "internal"}]}
                        ]
                    },
                },
                "http": {
                    "http_port": 0,
                    "servers": {
                        "acme": {
                            "listen": [f"{HOST}:{self.port}"],
                            "automatic_https": {"disable": True},
                            "tls_connection_policies": [{"default_sni": HOST}],
                            "routes": [
                                {
                                    "handle": [
                                        {
                                            "handler": "acme_server",
                                            "challenges": ["dns-01"],
                                            "resolvers": [self.resolver],
                                        }
                                    ]
                                }
                            ],
                        }
                    },
                },
            },
        }
        config_path = self.workdir / "caddy.json"
        config_path.write_text(json.dumps(config))
        binary = find_caddy()
        if binary is None:
            raise PebbleStartError("caddy not found; run scripts/setup")
        env = {
            **os.environ,
            "HOME": str(self.workdir),
            "XDG_DATA_HOME": str(self.workdir / "data"),
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
        }
        log = (self.workdir / "caddy.log").open("ab")
        self._process = subprocess.Popen(
            [binary, "run", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while not (_port_open(self.port) and self.ca_bundle_path.exists()):
            if self._process.poll() is not None or time.monotonic() > deadline:
                logs = self.logs()
                self.stop()
                raise PebbleStartError(f"caddy did not start:\n{logs}")
            time.sleep(0.05)
        return self

    def reset_accounts(self) -> None:
        """Stop, wipe the ACME database (every account, order, authorization)
        and start again on the same port with the same CA."""
        self._stop_process()
        assert self.workdir is not None
        shutil.rmtree(
            self.workdir / "data" / "caddy" / "acme_server", ignore_errors=True
        )
        self.start()

    def logs(self) -> str:
        """The tail of Caddy's log (for failure messages)."""
        if self.workdir is None or not (path := self.workdir / "caddy.log").exists():
            return ""
        return path.read_text(errors="replace")[-4000:]

    def _stop_process(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None

    def stop(self) -> None:
        """Stop Caddy and remove its directory."""
        self._stop_process()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
