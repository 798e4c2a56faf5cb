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

:class:`Sandbox` is a context manager; :func:`main` is the command line.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Any, Self
import urllib.error
import urllib.request

from aiohttp import web

from tests.fakes.duckdns import FakeDuckDns, start_fake_duckdns, stop_fake_duckdns
from tests.fakes.igd import FakeIgd, GatewayState, Mapping
from tests.fakes.pebble import HOST, PebbleServer, _port_open
from tests.fakes.service import Service

REPO = Path(__file__).resolve().parents[2]
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


def hass_binary() -> str:
    """The virtual environment's ``hass``."""
    candidates = [Path(sys.executable).parent / "hass", REPO / ".venv" / "bin" / "hass"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    if found := shutil.which("hass"):
        return found
    raise FileNotFoundError("hass not found; run scripts/setup")


def http_storage(port: int) -> dict[str, object]:
    """``.storage/http`` with the port as the confirmed (stable) configuration.

    Since 2026.8 the http settings live in UI storage: a YAML ``http:`` section
    is migrated once as a *pending* trial that reverts (and restarts Home
    Assistant) after five minutes unless confirmed. Seeding storage avoids it.
    """
    return {
        "version": 2,
        "minor_version": 2,
        "key": "http",
        "data": {
            "stable": {
                "server_host": [HOST],
                "server_port": port,
                "cors_allowed_origins": ["https://cast.home-assistant.io"],
                "login_attempts_threshold": -1,
                "ip_ban_enabled": True,
                "ssl_profile": "modern",
                "use_x_frame_options": True,
                "created_at": datetime.now(UTC).isoformat(),
                "error": None,
                "error_message": None,
            },
            "pending": None,
            "yaml_migration_done": True,
        },
    }


def _http_status(url: str) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            status: int = response.status
    except urllib.error.HTTPError as err:
        return err.code
    except urllib.error.URLError, OSError:
        return None
    return status


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (Linux /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


class DuckDnsThread:
    """:class:`FakeDuckDns` served from an event loop in a daemon thread."""

    def __init__(self, fake: FakeDuckDns, port: int = 0) -> None:
        """Serve ``fake`` on 127.0.0.1:``port`` (0: a free port) once started."""
        self.fake = fake
        self.port = port
        self.url = ""
        self._loop = asyncio.new_event_loop()
        # One executor thread, made at start: the loop never adds threads
        # later (pytest's leak check runs per test, this thread outlives them).
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sandbox-duckdns")
        self._loop.set_default_executor(self._executor)
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sandbox-duckdns", daemon=True
        )
        self._runner: web.AppRunner | None = None

    def run[T](self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the thread's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> str:
        """Start serving; return the ``/update`` URL."""
        self._thread.start()
        self._executor.submit(time.sleep, 0).result(timeout=10)
        self._runner, self.url = asyncio.run_coroutine_threadsafe(
            start_fake_duckdns(self.fake, HOST, self.port), self._loop
        ).result(timeout=10)
        return self.url

    def stop(self) -> None:
        """Stop serving and end the thread."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(
                stop_fake_duckdns(self.fake, self._runner), self._loop
            ).result(timeout=10)
            self._runner = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._executor.shutdown(wait=True)
        self._loop.close()


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
    _duckdns_thread: DuckDnsThread | None = field(init=False, default=None)

    # --- the values a user enters ------------------------------------------------

    @property
    def url(self) -> str:
        """Home Assistant's address."""
        return f"http://{HOST}:{self.hass_port}"

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
        storage = self.config_dir / ".storage"
        storage.mkdir(exist_ok=True)
        http = storage / "http"
        http.write_text(json.dumps(http_storage(self.hass_port), indent=2))
        http.chmod(0o600)
        self.ca_bundle_path.parent.mkdir(exist_ok=True)
        shutil.copyfile(self.pebble.ca_bundle_path, self.ca_bundle_path)
        self.certificate_path.parent.mkdir(exist_ok=True)

    start = start_services  # what ``with sandbox:`` starts

    def start_hass(self, *, wait: bool = True) -> None:
        """Start ``hass`` and (unless ``wait`` is False) wait until its HTTP API answers."""
        if _port_open(self.hass_port):
            raise RuntimeError(f"port {self.hass_port} is already in use")
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
        if wait:  # over HTTPS the caller waits with a client that trusts the CA
            self.wait_hass()

    def wait_hass(self) -> None:
        """Wait until the frontend (and so the REST API, its dependency) answers."""
        assert self.hass_process is not None
        deadline = time.monotonic() + self.boot_timeout
        while True:
            if self.hass_process.poll() is not None:
                raise RuntimeError(
                    f"hass exited with {self.hass_process.returncode}:\n{self.log_tail()}"
                )
            if _http_status(f"{self.url}/manifest.json") == 200:
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
        while not _catches_sigterm(self.hass_process.pid):
            if self.hass_process.poll() is not None:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"hass did not finish starting:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop_hass(self, timeout: float = 60.0) -> int | None:
        """Stop ``hass`` with SIGTERM (SIGKILL after ``timeout``); return its exit code.

        Waits for the end of start-up first, so that the stop is a clean one.
        """
        if self.hass_process is not None and self.hass_process.poll() is None:
            self.wait_running()
        process, self.hass_process = self.hass_process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode

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


def banner(sandbox: Sandbox) -> str:
    """What the user enters, and where things are."""
    values = sandbox.values()
    return f"""
Secure Remote Access sandbox: everything runs on 127.0.0.1, nothing leaves this machine.

  Home Assistant    {sandbox.url}   (configuration: {sandbox.config_dir})
  Pebble (ACME)     {values["acme_directory_url"]}
  challtestsrv DNS  {values["dns_server"]}
  DuckDNS stand-in  {values["duckdns_url"]}
  UPnP gateway      {values["upnp_location"]}

1. Open {sandbox.url}, create your user, finish onboarding.
2. Settings -> Devices & services -> Add integration -> Secure Remote Access:
     DuckDNS names ............ {values["domain"]}
     Token .................... {values["token"]}
     For testing -> DuckDNS update URL  {values["duckdns_url"]}
     For testing -> UPnP gateway description URL  {values["upnp_location"]}
   Then "Obtain a certificate":
     Certificate authority .... Another ACME CA
     Directory URL of the other CA  {values["acme_directory_url"]}
     Certificate profile ...... {values["profile"]}
     Certificate file ......... {values["certificate_path"]}
     Private key file ......... {values["private_key_path"]}
     CA bundle of the ACME server  {values["acme_ca_bundle"]}
     For testing -> DNS server for propagation checks  {values["dns_server"]}
   Accept the terms: the first certificate is issued within a minute
   (or at once with the action secure_remote_access.renew_certificate).

The gateway forwards port {sandbox.hass_port} to Home Assistant, which serves plain
HTTP: the entry's Remote access sensor says reachable and Repairs shows
"Home Assistant's plain-HTTP port is open to the internet" until you serve
the certificate (Configure -> Serve the certificate from Home Assistant).

Home Assistant's log: {sandbox.log_path}
Press Ctrl-C to stop everything.
"""


class _StopRequestedError(Exception):
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequestedError


def main(argv: list[str] | None = None) -> int:
    """``scripts/develop --sandbox``: run the sandbox until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="scripts/develop --sandbox",
        description="The offline sandbox on 127.0.0.1: Pebble, challtestsrv, a"
        " DuckDNS stand-in, a UPnP gateway and Home Assistant with the integration"
        " from this working tree. It prints what to enter; Ctrl-C stops it.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO / ".sandbox" / "config",
        metavar="DIR",
        help="Home Assistant's configuration directory (default: .sandbox/config,"
        " emptied at start unless --keep)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_HASS_PORT,
        help=f"Home Assistant's port (default: {DEFAULT_HASS_PORT})",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        help="Pebble, challtestsrv, DuckDNS and the UPnP gateway use this port"
        f" and the next five (default: {DEFAULT_BASE_PORT})",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep Home Assistant's state from the last run (Pebble starts"
        " empty every time: its CA, accounts and certificates are new)",
    )
    args = parser.parse_args(argv)
    config_dir: Path = args.config.resolve()
    if not args.keep and config_dir.exists():
        shutil.rmtree(config_dir)
    for port in (args.port, *range(args.base_port, args.base_port + 6)):
        if _port_open(port):
            print(f"port {port} is in use: pick others with --port/--base-port")
            return 1
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    sandbox = Sandbox(config_dir, hass_port=args.port, base_port=args.base_port)
    try:
        sandbox.start_services()
        print(
            f"Starting Home Assistant on {sandbox.url} (a few seconds)...", flush=True
        )
        sandbox.start_hass()
        print(banner(sandbox), flush=True)
        assert sandbox.hass_process is not None
        code = sandbox.hass_process.wait()
    except _StopRequestedError:
        print(
            "\nStopping Home Assistant, Pebble, challtestsrv, DuckDNS"
            " and the UPnP gateway..."
        )
        return 0
    except RuntimeError as err:
        print(err)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sandbox.stop()
        print("Sandbox stopped.")
    print(f"Home Assistant exited with {code}; see {sandbox.log_path}")
    return code or 1


__all__ = ["NAME", "TOKEN", "Sandbox", "main"]

if __name__ == "__main__":
    sys.exit(main())
