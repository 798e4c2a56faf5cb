"""Run Pebble (Let's Encrypt's test ACME server) and pebble-challtestsrv locally.

Independent of pytest: the sandbox can use it as a context manager::

    with PebbleServer() as pebble:
        print(pebble.directory_url, pebble.ca_bundle_path, pebble.dns_server)

Both processes listen on free 127.0.0.1 ports only. Pebble validates dns-01
against challtestsrv's DNS server, whose TXT/CNAME answers are set over HTTP
(:meth:`PebbleServer.set_txt` and friends). Pebble's own HTTPS listeners use a
certificate for 127.0.0.1/localhost made here by a throw-away CA
(:attr:`PebbleServer.ca_bundle_path`). Pebble runs with ``PEBBLE_VA_NOSLEEP=1``;
its 5 % bad-nonce rejection and 50 % authorization reuse stay at their defaults.
"""

from __future__ import annotations

import _socket  # the C socket: pytest-socket's guard must not hide our readiness probes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import shutil
import ssl
import subprocess
import tempfile
import time
from typing import Any, Self

import aiohttp

from tests.fakes.certs import CertificateAuthority, generate_key, write_file
from tests.fakes.service import Service

HOST = "127.0.0.1"
# Key slots of tests/fakes/certs.py reserved for the listener certificate.
LISTENER_CA_KEY_SLOT = 98
LISTENER_KEY_SLOT = 99
#: The EAB credentials of an ``eab_required`` instance (key id -> base64url HMAC key).
DEFAULT_EAB_KEYS: Mapping[str, str] = {
    "kid-1": "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
    "kid-2": "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH",
}
DEFAULT_BLOCKLIST: tuple[str, ...] = ("blocked-domain.example",)
DEFAULT_PROFILES: Mapping[str, Mapping[str, Any]] = {
    "default": {
        "description": "The profile you know and love",
        "validityPeriod": 7776000,
    },
    "shortlived": {
        "description": "A short-lived cert profile",
        "validityPeriod": 518400,
    },
}


class PebbleStartError(RuntimeError):
    """Pebble or challtestsrv did not come up."""


def find_binary(name: str) -> str:
    """Locate ``pebble``/``pebble-challtestsrv``: $PEBBLE_BIN_DIR, the venv, PATH, the cache."""
    candidates = []
    if bin_dir := os.environ.get("PEBBLE_BIN_DIR"):
        candidates.append(Path(bin_dir) / name)
    repo = Path(__file__).resolve().parents[2]
    candidates.append(repo / ".venv" / "bin" / name)
    if found := shutil.which(name):
        candidates.append(Path(found))
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    candidates.append(cache / "secure-remote-access" / "pebble" / "usr" / "bin" / name)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise PebbleStartError(f"{name} not found; run scripts/setup")


def pebble_available() -> bool:
    """Whether both Pebble binaries can be found."""
    try:
        find_binary("pebble")
        find_binary("pebble-challtestsrv")
    except PebbleStartError:
        return False
    return True


def _free_port(udp_too: bool = False) -> int:
    """A port free on 127.0.0.1 for TCP (and UDP when asked)."""
    for _ in range(50):
        tcp = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        try:
            tcp.bind((HOST, 0))
            port: int = tcp.getsockname()[1]
            if udp_too:
                udp = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
                finally:
                    udp.close()
            return port
        finally:
            tcp.close()
    raise PebbleStartError("no free port")


def _port_open(port: int) -> bool:
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    sock.settimeout(0.2)
    try:
        sock.connect((HOST, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True


def _write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """Create a throw-away CA and a server certificate for 127.0.0.1 and localhost."""
    # A hierarchy of its own: tests that trust (or distrust) the shared test
    # CA must not accidentally trust Pebble's listener, or the reverse.
    ca = CertificateAuthority.create_root(
        "Pebble test listener CA", key=generate_key(slot=LISTENER_CA_KEY_SLOT)
    )
    leaf = ca.issue(
        ["localhost", HOST],
        key=generate_key(slot=LISTENER_KEY_SLOT),
        valid_days=30,
    )
    ca_path = ca.write_bundle(directory / "listener-ca.pem")
    cert_path = write_file(
        directory / "listener-cert.pem", leaf.fullchain_pem + ca.cert_pem
    )
    key_path = write_file(directory / "listener-key.pem", leaf.key_pem, 0o600)
    return ca_path, cert_path, key_path


@dataclass
class PebbleServer(Service):
    """Pebble + challtestsrv on free 127.0.0.1 ports, in a temporary directory.

    ``eab_required`` makes newAccount demand External Account Binding with
    ``eab_keys``; ``domain_blocklist`` names are refused with rejectedIdentifier;
    ``alternate_roots`` adds alternate chains (Link rel="alternate");
    ``retry_after`` is the Retry-After seconds for pending authorizations and
    processing orders; ``extra_env`` is added to Pebble's environment.
    """

    eab_required: bool = False
    eab_keys: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_EAB_KEYS))
    domain_blocklist: Sequence[str] = DEFAULT_BLOCKLIST
    profiles: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: dict(DEFAULT_PROFILES)
    )
    alternate_roots: int = 1
    retry_after: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: Pebble's issuer names (``caaIdentities``, also its dns-persist-01
    #: issuer-domain-names); empty: Pebble's default, pebble.letsencrypt.org.
    caa_identities: Sequence[str] = ()
    startup_timeout: float = 15.0
    #: The DNS server (``ip:port``) Pebble validates against instead of its own
    #: challtestsrv's: a second CA that sees the records another Pebble's has.
    validation_dns: str | None = None
    #: Fixed ports instead of free ones: ACME, management, challtestsrv and its
    #: DNS server listen on base_port .. base_port + 3 (the sandbox's stable values).
    base_port: int | None = None

    acme_port: int = field(init=False, default=0)
    management_port: int = field(init=False, default=0)
    challtestsrv_port: int = field(init=False, default=0)
    dns_port: int = field(init=False, default=0)
    workdir: Path | None = field(init=False, default=None)
    ca_bundle_path: Path = field(init=False, default=Path())
    _processes: list[subprocess.Popen[bytes]] = field(init=False, default_factory=list)
    _ssl_context: ssl.SSLContext | None = field(init=False, default=None, repr=False)

    # --- addresses --------------------------------------------------------------

    @property
    def directory_url(self) -> str:
        """The ACME directory URL."""
        return f"https://{HOST}:{self.acme_port}/dir"

    @property
    def management_url(self) -> str:
        """Base URL of Pebble's management API (roots, intermediates, set-renewal-info)."""
        return f"https://{HOST}:{self.management_port}"

    @property
    def challtestsrv_url(self) -> str:
        """Base URL of challtestsrv's management API."""
        return f"http://{HOST}:{self.challtestsrv_port}"

    @property
    def dns_server(self) -> str:
        """challtestsrv's DNS server as ``ip:port`` (UDP and TCP)."""
        return f"{HOST}:{self.dns_port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting Pebble's HTTPS listeners (made once, at start)."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(
                cafile=str(self.ca_bundle_path)
            )
        return self._ssl_context

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> Self:
        """Start both processes and wait until they listen; retries on port clashes."""
        if self._processes:
            return self
        self.workdir = Path(tempfile.mkdtemp(prefix="pebble-"))
        self.ca_bundle_path, cert_path, key_path = _write_tls_files(self.workdir)
        self._ssl_context = None
        self.ssl_context()
        last_error: PebbleStartError | None = None
        for _ in range(3):
            try:
                self._start_once(cert_path, key_path)
            except PebbleStartError as err:
                last_error = err
                self._stop_processes()
            else:
                return self
        self.stop()
        assert last_error is not None
        raise last_error

    def _start_once(self, cert_path: Path, key_path: Path) -> None:
        assert self.workdir is not None
        if self.base_port is not None:
            self.acme_port, self.management_port, self.challtestsrv_port = (
                self.base_port + offset for offset in range(3)
            )
            self.dns_port = self.base_port + 3
        else:
            self.acme_port = _free_port()
            self.management_port = _free_port()
            self.challtestsrv_port = _free_port()
            self.dns_port = _free_port(udp_too=True)
        config: dict[str, Any] = {
            "pebble": {
                "listenAddress": f"{HOST}:{self.acme_port}",
                "managementListenAddress": f"{HOST}:{self.management_port}",
                "certificate": str(cert_path),
                "privateKey": str(key_path),
                "httpPort": 5002,
                "tlsPort": 5001,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": self.eab_required,
                "domainBlocklist": list(self.domain_blocklist),
                "retryAfter": {"authz": self.retry_after, "order": self.retry_after},
                "keyAlgorithm": "ecdsa",
                "profiles": {
                    name: dict(value) for name, value in self.profiles.items()
                },
            }
        }
        if self.eab_required:
            config["pebble"]["externalAccountMACKeys"] = dict(self.eab_keys)
        if self.caa_identities:
            config["pebble"]["caaIdentities"] = list(self.caa_identities)
        config_path = self.workdir / "pebble-config.json"
        config_path.write_text(json.dumps(config, indent=2))

        chall_log = (self.workdir / "challtestsrv.log").open("wb")
        self._processes.append(
            subprocess.Popen(
                [
                    find_binary("pebble-challtestsrv"),
                    "-management",
                    f"{HOST}:{self.challtestsrv_port}",
                    "-dnsserver",
                    self.dns_server,
                    "-http01",
                    "",
                    "-https01",
                    "",
                    "-tlsalpn01",
                    "",
                    "-doh",
                    "",
                    "-defaultIPv4",
                    HOST,
                    "-defaultIPv6",
                    "",
                ],
                stdout=chall_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
        chall_log.close()
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_ALTERNATE_ROOTS": str(self.alternate_roots),
            **self.extra_env,
        }
        pebble_log = (self.workdir / "pebble.log").open("wb")
        self._processes.append(
            subprocess.Popen(
                [
                    find_binary("pebble"),
                    "-config",
                    str(config_path),
                    "-dnsserver",
                    self.validation_dns or self.dns_server,
                ],
                stdout=pebble_log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        )
        pebble_log.close()
        self._wait_listening(
            [
                self.acme_port,
                self.management_port,
                self.challtestsrv_port,
                self.dns_port,
            ]
        )

    def _wait_listening(self, ports: Sequence[int]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        pending = list(ports)
        while pending:
            for process in self._processes:
                if process.poll() is not None:
                    raise PebbleStartError(f"{process.args!r} exited:\n{self.logs()}")
            pending = [port for port in pending if not _port_open(port)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise PebbleStartError(f"ports {pending} not listening:\n{self.logs()}")
            time.sleep(0.05)

    def logs(self) -> str:
        """The tail of both processes' output (for failure messages)."""
        if self.workdir is None:
            return ""
        parts = []
        for name in ("pebble.log", "challtestsrv.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def _stop_processes(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._processes.clear()

    def stop(self) -> None:
        """Stop both processes and remove the temporary directory."""
        self._stop_processes()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # --- helpers (async, aiohttp; pass a session or one is made per call) -------

    async def _call(
        self,
        method: str,
        url: str,
        payload: Any | None,
        session: aiohttp.ClientSession | None,
        *,
        tls: bool,
    ) -> bytes:
        ssl_setting: ssl.SSLContext | bool = self.ssl_context() if tls else False
        own = session is None
        client = session or aiohttp.ClientSession()
        try:
            async with client.request(
                method,
                url,
                data=json.dumps(payload) if payload is not None else None,
                ssl=ssl_setting,
                headers={"User-Agent": "pebble-test-fixture"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                body = await resp.read()
                if resp.status >= 400:
                    raise RuntimeError(
                        f"{method} {url}: HTTP {resp.status}: {body[:300]!r}"
                    )
                return body
        finally:
            if own:
                await client.close()

    async def _challtestsrv(
        self,
        path: str,
        payload: Mapping[str, Any],
        session: aiohttp.ClientSession | None,
    ) -> None:
        await self._call(
            "POST", self.challtestsrv_url + path, payload, session, tls=False
        )

    async def set_txt(
        self, host: str, value: str, session: aiohttp.ClientSession | None = None
    ) -> None:
        """Add a TXT value for ``host`` (values accumulate; see :meth:`clear_txt`)."""
        await self._challtestsrv(
            "/set-txt", {"host": _fqdn(host), "value": value}, session
        )

    async def clear_txt(
        self, host: str, session: aiohttp.ClientSession | None = None
    ) -> None:
        """Remove every TXT value of ``host``."""
        await self._challtestsrv("/clear-txt", {"host": _fqdn(host)}, session)

    async def set_cname(
        self, host: str, target: str, session: aiohttp.ClientSession | None = None
    ) -> None:
        """Make ``host`` a CNAME for ``target``."""
        await self._challtestsrv(
            "/set-cname", {"host": _fqdn(host), "target": _fqdn(target)}, session
        )

    async def clear_cname(
        self, host: str, session: aiohttp.ClientSession | None = None
    ) -> None:
        """Remove the CNAME of ``host``."""
        await self._challtestsrv("/clear-cname", {"host": _fqdn(host)}, session)

    async def set_a(
        self,
        host: str,
        addresses: Sequence[str],
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """Answer A queries for ``host`` with ``addresses``."""
        await self._challtestsrv(
            "/add-a", {"host": _fqdn(host), "addresses": list(addresses)}, session
        )

    async def clear_a(
        self, host: str, session: aiohttp.ClientSession | None = None
    ) -> None:
        """Forget the A records of ``host`` (the default answer again)."""
        await self._challtestsrv("/clear-a", {"host": _fqdn(host)}, session)

    async def set_default_ipv4(
        self, address: str, session: aiohttp.ClientSession | None = None
    ) -> None:
        """Set the address challtestsrv answers A queries with by default."""
        await self._challtestsrv("/set-default-ipv4", {"ip": address}, session)

    async def root_pem(
        self, index: int = 0, session: aiohttp.ClientSession | None = None
    ) -> str:
        """Pebble's root certificate ``index`` (0 is the default chain's root)."""
        body = await self._call(
            "GET", f"{self.management_url}/roots/{index}", None, session, tls=True
        )
        return body.decode("ascii")

    async def intermediate_pem(
        self, index: int = 0, session: aiohttp.ClientSession | None = None
    ) -> str:
        """Pebble's intermediate certificate ``index``."""
        body = await self._call(
            "GET",
            f"{self.management_url}/intermediates/{index}",
            None,
            session,
            tls=True,
        )
        return body.decode("ascii")

    async def set_renewal_info(
        self,
        certificate_pem: str,
        renewal_info: Mapping[str, Any] | str,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """Make Pebble answer ARI for the certificate with ``renewal_info`` (JSON or raw text)."""
        raw = (
            renewal_info if isinstance(renewal_info, str) else json.dumps(renewal_info)
        )
        await self._call(
            "POST",
            f"{self.management_url}/set-renewal-info/",
            {"certificate": certificate_pem, "ariResponse": raw},
            session,
            tls=True,
        )


def _fqdn(host: str) -> str:
    return host if host.endswith(".") else host + "."


def registered_duckdns_domain(name: str) -> str:
    """``a.b.myhome.duckdns.org`` -> ``myhome.duckdns.org`` (other names unchanged)."""
    labels = name.removeprefix("*.").rstrip(".").lower().split(".")
    if labels[-2:] == ["duckdns", "org"] and len(labels) >= 3:
        return ".".join(labels[-3:])
    return ".".join(labels)


@dataclass
class DuckDnsLikeSolver:
    """A dns-01 solver that behaves like DuckDNS, publishing through challtestsrv.

    DuckDNS keeps ONE TXT value per registered domain, shared by every name
    under it: setting a value replaces the previous one for all those names.
    ``history`` records every (domain, value) set, ``cleared`` every clear;
    ``publish=False`` makes the DNS never show anything.
    """

    pebble: PebbleServer
    publish: bool = True
    values: dict[str, str] = field(default_factory=dict)
    names: dict[str, set[str]] = field(default_factory=dict)
    history: list[tuple[str, str]] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)

    async def set_txt(self, identifier: str, value: str) -> None:
        """Replace the domain's single TXT value."""
        domain = registered_duckdns_domain(identifier)
        self.values[domain] = value
        self.history.append((domain, value))
        known = self.names.setdefault(domain, set())
        known.add(identifier.removeprefix("*.").lower())
        if not self.publish:
            return
        async with aiohttp.ClientSession() as session:
            for name in known:
                record = f"_acme-challenge.{name}"
                await self.pebble.clear_txt(record, session)
                await self.pebble.set_txt(record, value, session)

    async def clear_txt(self, identifier: str) -> None:
        """Remove the domain's TXT value (for every name under it)."""
        domain = registered_duckdns_domain(identifier)
        self.values.pop(domain, None)
        self.cleared.append(domain)
        async with aiohttp.ClientSession() as session:
            for name in self.names.get(domain, set()):
                await self.pebble.clear_txt(f"_acme-challenge.{name}", session)


__all__ = [
    "DEFAULT_BLOCKLIST",
    "DEFAULT_EAB_KEYS",
    "DuckDnsLikeSolver",
    "PebbleServer",
    "PebbleStartError",
    "pebble_available",
    "registered_duckdns_domain",
]
