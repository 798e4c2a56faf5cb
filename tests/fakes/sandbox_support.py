"""What the sandbox (:mod:`tests.fakes.sandbox`) runs on: probes, seeds, a thread.

``.storage/http`` as the sandbox seeds it and as Home Assistant reads it,
status probes over HTTP and HTTPS, the key hash Chromium trusts, and the
DuckDNS stand-in's event loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
import hashlib
import os
from pathlib import Path
import shutil
import signal
import ssl
import sys
import threading
import time
from typing import Any
import urllib.error
import urllib.request

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.fakes.duckdns import FakeDuckDns, start_fake_duckdns, stop_fake_duckdns
from tests.fakes.pebble import HOST

REPO = Path(__file__).resolve().parents[2]


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


def http_status(url: str) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            status: int = response.status
    except urllib.error.HTTPError as err:
        return err.code
    except urllib.error.URLError, OSError:
        return None
    return status


def https_status(url: str) -> int | None:
    """The status of a GET over TLS without verifying (the server is ours)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
            status: int = response.status
    except urllib.error.HTTPError as err:
        return err.code
    except urllib.error.URLError, OSError:
        return None
    return status


def spki_sha256(pem: str) -> str:
    """Chromium's ``--ignore-certificate-errors-spki-list`` value for a certificate."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def active_http(data: dict[str, Any]) -> dict[str, Any]:
    """The slot of ``.storage/http`` Home Assistant starts with (recovery aside)."""
    pending: dict[str, Any] | None = data.get("pending")
    if pending and not pending.get("error"):
        return pending
    stable: dict[str, Any] = data["stable"]
    return stable


def catches_sigterm(pid: int) -> bool:
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
