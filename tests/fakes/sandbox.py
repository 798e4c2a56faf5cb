"""An offline sandbox: Pebble, challtestsrv, a DuckDNS stand-in and Home Assistant.

Used by ``scripts/develop --sandbox`` (``python -m tests.fakes.sandbox``) and by
the acceptance tests. Everything listens on 127.0.0.1 only:

* Pebble (Let's Encrypt's test ACME server) and pebble-challtestsrv (its DNS
  server, whose answers are set over HTTP), see :mod:`tests.fakes.pebble`;
* a DuckDNS-compatible server (:mod:`tests.fakes.duckdns`) that records IP
  updates and turns them and TXT updates into challtestsrv records, run in a
  thread of its own so that synchronous callers (the CLI, pytest fixtures)
  can use it; it "sees" the public address :data:`PUBLIC_IPV4`;
* a UPnP Internet gateway (:mod:`tests.fakes.igd`, async_upnp_client's server
  module, HTTP only: no SSDP) on the same loop, whose WAN address is
  :data:`PUBLIC_IPV4` and which forwards Home Assistant's port to 127.0.0.1,
  so the Remote access sensor and the plain_http_forwarded issue show;
* ``hass -c CONFIG_DIR`` with a lean configuration, the integration linked
  into ``custom_components`` and Pebble's CA bundle copied into the
  configuration directory (certificate paths must be inside it).

:class:`Sandbox` is a context manager; :mod:`tests.fakes.sandbox_cli` is the
command line (``scripts/develop --sandbox``).
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
import json
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Self

from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.igd import FakeIgd, GatewayState, Mapping
from tests.fakes.pebble import HOST, PebbleServer, _port_open
from tests.fakes.sandbox_support import (
    REPO,
    DuckDnsThread,
    active_http,
    catches_sigterm,
    hass_binary,
    http_status,
    http_storage,
    https_status,
    spki_sha256,
)
from tests.fakes.service import Service

#: The DuckDNS account of the sandbox: a fixed token and one name.
TOKEN = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
NAME = "myhome"
FQDN = f"{NAME}.duckdns.org"
DEFAULT_HASS_PORT = 8123
#: Pebble uses BASE .. BASE + 3 (ACME, management, challtestsrv, DNS); DuckDNS
#: BASE + 4, the UPnP gateway BASE + 5.
DEFAULT_BASE_PORT = 14000
#: The public address DuckDNS and the gateway report (a documentation address:
#: nothing is ever sent to it; the hairpin probe goes to the gateway's host).
PUBLIC_IPV4 = "203.0.113.7"
#: The exit code of Home Assistant's restart: the Supervisor starts it again.
RESTART_EXIT_CODE = 100

CONFIGURATION_YAML = """\
# Written by the Secure Remote Access sandbox (tests/fakes/sandbox.py).
# A lean configuration: the frontend and what it depends on, no discovery.
homeassistant:
  name: Sandbox
  country: US
  time_zone: UTC
  unit_system: metric
frontend:
config:
person:
logger:
  default: warning
  logs:
    custom_components.secure_remote_access: debug
    homeassistant.components.http: info
"""


@dataclass
class Sandbox(Service):
    """The sandbox services and, on request, Home Assistant.

    With ``base_port`` the services listen on fixed ports (the values the README
    shows); without it (tests) on free ones.
    """

    config_dir: Path
    hass_port: int = DEFAULT_HASS_PORT
    base_port: int | None = None
    boot_timeout: float = 120.0

    pebble: PebbleServer = field(init=False)
    duckdns: FakeDuckDns = field(init=False)
    duckdns_url: str = field(init=False, default="")
    gateway: FakeIgd = field(init=False)
    upnp_location: str = field(init=False, default="")
    hass_process: subprocess.Popen[bytes] | None = field(init=False, default=None)
    restarts: int = field(init=False, default=0)
    """Restarts Home Assistant asked for (exit code 100) and got."""
    http_note: str = field(init=False, default="")
    """Why ``.storage/http`` was left as it was (empty when the sandbox wrote it)."""
    intermediate_spki: str = field(init=False, default="")
    _duckdns_thread: DuckDnsThread | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _stopping: bool = field(init=False, default=False)
    _watcher: threading.Thread | None = field(init=False, default=None)

    # --- the values a user enters ------------------------------------------------

    @property
    def url(self) -> str:
        """Home Assistant's address over plain HTTP."""
        return f"http://{HOST}:{self.hass_port}"

    @property
    def https_url(self) -> str:
        """Home Assistant's address once it serves the certificate for the name."""
        return f"https://{FQDN}:{self.hass_port}"

    @property
    def address(self) -> str:
        """The address to open now: HTTPS with the name once Home Assistant serves it."""
        return self.https_url if self.serves_https() else self.url

    @property
    def root_path(self) -> Path:
        """The root of Pebble's certificates (new every run): what a browser trusts."""
        return self.config_dir / "sandbox" / "pebble-root.pem"

    @property
    def browser_profile(self) -> Path:
        """A browser profile of its own for the sandbox's command line."""
        return self.config_dir / "sandbox" / "browser"

    def browser_args(self) -> list[str]:
        """Chromium's options to open :attr:`https_url`: the name, and the CA trusted.

        The DuckDNS name resolves to 127.0.0.1 in this browser only; errors of
        chains through Pebble's intermediate (its key hash) are ignored.
        """
        return [
            f"--host-resolver-rules=MAP {FQDN} {HOST}",
            f"--ignore-certificate-errors-spki-list={self.intermediate_spki}",
        ]

    def browser_command(self) -> str:
        """The command line the banner prints."""
        args = " ".join(f"'{arg}'" for arg in self.browser_args())
        return (
            f"chromium --user-data-dir={self.browser_profile} {args} {self.https_url}"
        )

    def serves_https(self) -> bool:
        """Whether Home Assistant serves (or its next start tries) HTTPS.

        Read from ``.storage/http`` as Home Assistant reads it: a pending
        config that has not failed is tried, otherwise the stable one.
        """
        try:
            data = json.loads((self.config_dir / ".storage" / "http").read_text())
        except OSError, ValueError:
            return False
        return bool(active_http(data["data"]).get("ssl_certificate"))

    @property
    def ca_bundle_path(self) -> Path:
        """Pebble's CA bundle inside the configuration directory."""
        return self.config_dir / "sandbox" / "pebble-ca.pem"

    @property
    def certificate_path(self) -> Path:
        """Where the issued certificate is written."""
        return self.config_dir / "ssl" / "fullchain.pem"

    @property
    def private_key_path(self) -> Path:
        """Where its private key is written."""
        return self.config_dir / "ssl" / "privkey.pem"

    @property
    def log_path(self) -> Path:
        """Home Assistant's output."""
        return self.config_dir / "sandbox" / "hass.log"

    def values(self) -> dict[str, str]:
        """The config flow's fields for the sandbox, by field key."""
        return {
            "domain": NAME,
            "token": TOKEN,
            "duckdns_url": self.duckdns_url,
            "upnp_location": self.upnp_location,
            "acme_directory": "custom",
            "acme_directory_url": self.pebble.directory_url,
            "acme_ca_bundle": str(self.ca_bundle_path),
            # Pebble picks a random profile for orders without one; "default"
            # gives 90 days (its "shortlived" 6 days would show as expiring soon).
            "profile": "default",
            "certificate_path": str(self.certificate_path),
            "private_key_path": str(self.private_key_path),
            "dns_server": self.pebble.dns_server,
        }

    # --- lifecycle ---------------------------------------------------------------

    def start_services(self) -> Self:
        """Start Pebble, challtestsrv and the DuckDNS server; write the config dir."""
        self.pebble = PebbleServer(base_port=self.base_port)
        self.pebble.start()
        try:
            self.duckdns = FakeDuckDns(
                token=TOKEN,
                domains=[NAME],
                challtestsrv_url=self.pebble.challtestsrv_url,
                detected_ipv4=PUBLIC_IPV4,
            )
            port = self.base_port + 4 if self.base_port is not None else 0
            self._duckdns_thread = DuckDnsThread(self.duckdns, port)
            self.duckdns_url = self._duckdns_thread.start()
            self.gateway = FakeIgd(
                GatewayState(
                    wan_address=PUBLIC_IPV4,
                    mappings=[
                        Mapping(self.hass_port, "TCP", self.hass_port, HOST, "HA")
                    ],
                )
            )
            gateway_port = self.base_port + 5 if self.base_port is not None else 0
            self.upnp_location = self._duckdns_thread.run(
                self.gateway.start(gateway_port)
            )
            self.write_config()
            self._write_trust()
        except BaseException:
            self.stop()
            raise
        return self

    def write_config(self) -> None:
        """Prepare the configuration directory (keeps existing state)."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION_YAML)
        link = self.config_dir / "custom_components"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(REPO / "custom_components", target_is_directory=True)
        self._write_http_storage()
        self.ca_bundle_path.parent.mkdir(exist_ok=True)
        shutil.copyfile(self.pebble.ca_bundle_path, self.ca_bundle_path)
        self.certificate_path.parent.mkdir(exist_ok=True)

    def _write_http_storage(self) -> None:
        """Seed ``.storage/http``, never over one the sandbox did not write.

        Home Assistant writes a pending change there (serving HTTPS, a change
        on the Network page); ``--keep`` keeps it. The sandbox rewrites only
        what it wrote itself (a copy is kept beside it), and otherwise takes
        the port from the stored config.
        """
        storage = self.config_dir / ".storage"
        storage.mkdir(parents=True, exist_ok=True)
        http = storage / "http"
        written = self.config_dir / "sandbox" / "http-written.json"
        written.parent.mkdir(exist_ok=True)
        if http.exists() and (
            not written.exists() or written.read_text() != http.read_text()
        ):
            data = json.loads(http.read_text())["data"]
            self.hass_port = int(active_http(data).get("server_port", self.hass_port))
            self.http_note = (
                f"kept {http} (Home Assistant wrote it): port {self.hass_port}"
            )
            return
        text = json.dumps(http_storage(self.hass_port), indent=2)
        http.write_text(text)
        http.chmod(0o600)
        written.write_text(text)

    def _write_trust(self) -> None:
        """Pebble's root (to trust in a browser) and its intermediate's key hash."""
        assert self._duckdns_thread is not None
        root = self._duckdns_thread.run(self.pebble.root_pem(0))
        intermediate = self._duckdns_thread.run(self.pebble.intermediate_pem(0))
        self.root_path.write_text(root)
        self.intermediate_spki = spki_sha256(intermediate)

    start = start_services  # what ``with sandbox:`` starts

    def start_hass(self, *, wait: bool = True) -> None:
        """Start ``hass`` and (unless ``wait`` is False) wait until it answers."""
        with self._lock:
            self._start_hass_process()
        if wait:
            self.wait_hass()

    def _start_hass_process(self) -> None:
        if _port_open(self.hass_port):
            raise RuntimeError(f"port {self.hass_port} is already in use")
        self._stopping = False
        log = self.log_path.open("ab")
        try:
            self.hass_process = subprocess.Popen(
                [hass_binary(), "-c", str(self.config_dir), "--skip-pip"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.config_dir,
                start_new_session=True,
            )
        finally:
            log.close()

    def answers(self) -> bool:
        """The frontend answers, over HTTPS or plain HTTP (a failed trial falls back)."""
        https = f"https://{HOST}:{self.hass_port}/manifest.json"
        return (
            https_status(https) == 200
            or http_status(f"{self.url}/manifest.json") == 200
        )

    def wait_hass(self) -> None:
        """Wait until the frontend (and so the REST API, its dependency) answers."""
        process = self.hass_process
        assert process is not None
        deadline = time.monotonic() + self.boot_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"hass exited with {process.returncode}:\n{self.log_tail()}"
                )
            if self.answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"hass did not answer in time:\n{self.log_tail()}")
            time.sleep(0.25)

    def wait_running(self, timeout: float | None = None) -> None:
        """Wait until ``hass`` handles SIGTERM, i.e. until its start-up finished.

        Home Assistant attaches its signal handlers only after ``async_start``
        returns (the core state is then RUNNING); a SIGTERM before that kills
        the process with -15. The handler shows in the kernel's ``SigCgt`` mask.
        """
        assert self.hass_process is not None
        deadline = time.monotonic() + (timeout or self.boot_timeout)
        while not catches_sigterm(self.hass_process.pid):
            if self.hass_process.poll() is not None:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"hass did not finish starting:\n{self.log_tail()}")
            time.sleep(0.1)

    def run_hass(self, on_restart: Callable[[], None] | None = None) -> int:
        """Wait for ``hass`` to end; start it again when it asks (exit code 100).

        As the Supervisor of Home Assistant OS does: serving HTTPS, keeping or
        reverting a trial and the restart action all end the process with 100.
        Returns the exit code that ends it for good.
        """
        while True:
            process = self.hass_process
            if process is None:
                return 0
            code = process.wait()
            with self._lock:
                if (
                    self._stopping
                    or code != RESTART_EXIT_CODE
                    or self.hass_process is not process
                ):
                    return code
                self.restarts += 1
                self._start_hass_process()
            self.wait_hass()
            if on_restart is not None:
                on_restart()

    def supervise(self) -> None:
        """Run :meth:`run_hass` in a thread of its own (the tests' sandbox)."""

        def watch() -> None:
            with contextlib.suppress(RuntimeError):  # the log tail says why
                self.run_hass()

        self._watcher = threading.Thread(
            target=watch, name="sandbox-supervisor", daemon=True
        )
        self._watcher.start()

    def stop_hass(self, timeout: float = 60.0) -> int | None:
        """Stop ``hass`` with SIGTERM (SIGKILL after ``timeout``); return its exit code.

        Waits for the end of start-up first, so that the stop is a clean one;
        nothing restarts it afterwards.
        """
        with self._lock:
            self._stopping = True
            process = self.hass_process
        if process is not None and process.poll() is None:
            self.wait_running()
        self.hass_process = None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._watcher is not None:
            self._watcher.join(timeout=timeout)
            self._watcher = None
        return None if process is None else process.returncode

    def stop(self) -> None:
        """Stop everything that was started."""
        self.stop_hass()
        if self._duckdns_thread is not None and self.upnp_location:
            self._duckdns_thread.run(self.gateway.stop())
            self.upnp_location = ""
        if self._duckdns_thread is not None:
            self._duckdns_thread.stop()
            self._duckdns_thread = None
        if hasattr(self, "pebble"):
            self.pebble.stop()

    def log_tail(self, chars: int = 6000) -> str:
        """The end of Home Assistant's output."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


__all__ = [
    "FQDN",
    "NAME",
    "RESTART_EXIT_CODE",
    "TOKEN",
    "Sandbox",
    "http_storage",
]

if __name__ == "__main__":
    from tests.fakes.sandbox_cli import main

    sys.exit(main())
