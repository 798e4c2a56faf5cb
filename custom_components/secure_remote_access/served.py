"""The certificate Home Assistant's own web server presents: lookup, safe hot swap, watch.

The running server keeps the TLS context Home Assistant created; it is never
reloaded in place (a failed ``load_cert_chain`` on a live context leaves it
with a certificate and no matching key). Instead, once, an SNI callback is
installed on it that hands each new handshake the *current* context. A swap
builds a fresh context from a verified pair off the event loop, makes it
current in one assignment, confirms with a handshake that the new serial is
presented, and otherwise goes back to the previous context: it either
succeeds or does nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
import os
from pathlib import Path
import ssl
import tempfile
from typing import Any, Final

from cryptography import x509
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.start import async_at_started
from homeassistant.util import ssl as ssl_util
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN, LOGGER
from .helpers import same_file
from .issues import async_delete_restart_required, async_raise_restart_required
from .protocol.x509 import (
    CertificateError,
    KeyMismatchError,
    MatchingPair,
    read_matching_pair,
)

HANDSHAKE_TIMEOUT: Final = 10.0
SERVED_CHECK_INTERVAL: Final = timedelta(hours=1)
# Home Assistant's http ssl_profile values; 2026.11 names them by guideline
# version and reads the old names as the version 4 ones.
SSL_MODERN: Final = "modern"
SSL_INTERMEDIATE: Final = "intermediate"
_UNVERSIONED_PROFILES: Final = {
    SSL_MODERN: "modern_v4",
    SSL_INTERMEDIATE: "intermediate_v4",
}
DATA_SERVED: HassKey[ServedCertificate] = HassKey(f"{DOMAIN}_served")


class SwapResult(StrEnum):
    """What happened to the running server's certificate."""

    ROTATED = "rotated"
    UP_TO_DATE = "up_to_date"
    NOT_SERVED = "not_served"
    KEY_MISMATCH = "key_mismatch"
    RESTART_REQUIRED = "restart_required"


@dataclass(frozen=True, slots=True)
class ServedFiles:
    """What the running server was started with."""

    certificate: str
    key: str
    host: str
    port: int
    profile: str | None
    peer_certificate: str | None


def served_files(hass: HomeAssistant) -> ServedFiles | None:
    """What Home Assistant's own web server serves, or None without TLS files."""
    http: Any = getattr(hass, "http", None)
    if http is None or not getattr(http, "ssl_certificate", None):
        return None
    hosts = getattr(http, "server_host", None) or []
    host = next(
        (h for h in hosts if h not in ("0.0.0.0", "::", "")),  # noqa: S104
        "127.0.0.1",
    )
    certificate = str(http.ssl_certificate)
    return ServedFiles(
        certificate=certificate,
        # Without ssl_key, Home Assistant reads the key from the certificate file.
        key=str(getattr(http, "ssl_key", None) or certificate),
        host=host,
        port=int(http.server_port),
        profile=getattr(http, "ssl_profile", None),
        peer_certificate=getattr(http, "ssl_peer_certificate", None) or None,
    )


def server_context_for(profile: str | None) -> ssl.SSLContext:
    """An empty server context for an http ``ssl_profile``, as Home Assistant makes it.

    Home Assistant 2026.11 has ``server_context(profile)`` for its versioned
    profiles; 2026.10 has one function per profile.
    """
    make: Callable[[Any], ssl.SSLContext] | None = getattr(
        ssl_util, "server_context", None
    )
    if make is not None:
        name = profile or SSL_MODERN
        return make(_UNVERSIONED_PROFILES.get(name, name))
    if profile == SSL_INTERMEDIATE:
        return ssl_util.server_context_intermediate()
    return ssl_util.server_context_modern()


def build_server_context(
    pair: MatchingPair, profile: str | None, peer_certificate: str | None
) -> ssl.SSLContext:
    """A server context like Home Assistant's own, for ``pair`` (blocking).

    The key only ever touches a private temporary directory, for the moment
    OpenSSL needs a file name.
    """
    context = server_context_for(profile)
    with tempfile.TemporaryDirectory(prefix="sra-swap-") as directory:
        cert_file = Path(directory, "fullchain.pem")
        key_file = Path(directory, "privkey.pem")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pair.key_pem)
        cert_file.write_bytes(pair.certificate_pem)
        context.load_cert_chain(str(cert_file), str(key_file))
    if peer_certificate:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(peer_certificate)
    return context


async def async_presented_serial(
    host: str, port: int, server_name: str | None = None
) -> str | None:
    """The serial number the server at ``host:port`` presents now (SNI: ``server_name``)."""
    context = ssl_util.get_default_no_verify_context()
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            _, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=server_name
            )
    except (OSError, TimeoutError) as err:
        LOGGER.debug("Handshake with the local server failed: %s", err)
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if der is None:
        return None
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


class ServedCertificate:
    """The installation's one switch between Home Assistant's server and its pair."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Nothing is touched until the first swap."""
        self.hass = hass
        self._lock = asyncio.Lock()
        self._live: ssl.SSLContext | None = None
        self._current: ssl.SSLContext | None = None
        self._users = 0
        self._unsubs: list[CALLBACK_TYPE] = []
        self._mismatch_logged: set[str] = set()

    def _select_context(
        self, ssl_object: ssl.SSLObject, _server_name: str | None, _: ssl.SSLContext
    ) -> None:
        """SNI callback: hand the handshake the current context."""
        if (current := self._current) is not None:
            ssl_object.context = current

    def _hook(self, live: ssl.SSLContext) -> bool:
        """Install the SNI callback once; False when another one is there."""
        if self._live is live:
            return True
        if live.sni_callback is not None:
            return False
        live.sni_callback = self._select_context
        self._live, self._current = live, None
        return True

    async def async_swap(self, cert_path: Path, key_path: Path) -> SwapResult:
        """Make the server present the pair at these paths, if it serves them."""
        files = served_files(self.hass)
        if files is None:
            return SwapResult.NOT_SERVED
        same = await self.hass.async_add_executor_job(
            lambda: (
                same_file(files.certificate, cert_path)
                and same_file(files.key, key_path)
            )
        )
        if not same:
            return SwapResult.NOT_SERVED
        async with self._lock:
            return await self._async_swap_locked(files)

    async def async_check(self) -> SwapResult:
        """Swap when the served files hold another certificate than the one presented.

        Catches certificates renewed behind our back (an add-on, by hand).
        """
        files = served_files(self.hass)
        if files is None:
            return SwapResult.NOT_SERVED
        async with self._lock:
            return await self._async_swap_locked(files)

    async def _async_swap_locked(self, files: ServedFiles) -> SwapResult:
        try:
            pair = await self.hass.async_add_executor_job(
                read_matching_pair, files.certificate, files.key
            )
        except KeyMismatchError as err:
            if files.certificate not in self._mismatch_logged:
                LOGGER.warning(
                    "Not serving %s: %s; the current certificate stays in use",
                    files.certificate,
                    err,
                )
                self._mismatch_logged.add(files.certificate)
            return SwapResult.KEY_MISMATCH
        except CertificateError as err:
            LOGGER.warning("Cannot read %s to serve it: %s", files.certificate, err)
            return SwapResult.RESTART_REQUIRED
        self._mismatch_logged.discard(files.certificate)
        wanted = pair.certificate.serial_number
        if await async_presented_serial(files.host, files.port) == wanted:
            return SwapResult.UP_TO_DATE
        live: ssl.SSLContext | None = getattr(self.hass.http, "context", None)
        if live is None or not self._hook(live):
            return SwapResult.RESTART_REQUIRED
        try:
            fresh = await self.hass.async_add_executor_job(
                build_server_context, pair, files.profile, files.peer_certificate
            )
        except (OSError, ssl.SSLError) as err:
            LOGGER.warning("Could not prepare the new certificate for serving: %s", err)
            return SwapResult.RESTART_REQUIRED
        previous, self._current = self._current, fresh
        presented = await async_presented_serial(files.host, files.port)
        if presented != wanted:
            self._current = previous
            LOGGER.warning(
                "The server presents serial %s instead of %s; kept the old certificate",
                presented,
                wanted,
            )
            return SwapResult.RESTART_REQUIRED
        LOGGER.info("Home Assistant now serves certificate %s", wanted)
        return SwapResult.ROTATED

    @callback
    def async_add_user(self) -> CALLBACK_TYPE:
        """Watch the served certificate hourly while at least one entry is loaded."""
        self._users += 1
        if self._users == 1:
            self._unsubs.append(async_at_started(self.hass, self._async_started))

        @callback
        def _remove() -> None:
            self._users -= 1
            if self._users == 0:
                while self._unsubs:
                    self._unsubs.pop()()

        return _remove

    async def _async_started(self, _hass: HomeAssistant) -> None:
        self._unsubs.append(
            async_track_time_interval(
                self.hass,
                self._async_interval,
                SERVED_CHECK_INTERVAL,
                cancel_on_shutdown=True,
            )
        )
        await self._async_interval()

    async def _async_interval(self, _now: Any = None) -> None:
        result = await self.async_check()
        files = served_files(self.hass)
        async_report(self.hass, result, files.certificate if files else "")


@callback
def served_certificate(hass: HomeAssistant) -> ServedCertificate:
    """The one ServedCertificate of this Home Assistant instance."""
    if DATA_SERVED not in hass.data:
        hass.data[DATA_SERVED] = ServedCertificate(hass)
    return hass.data[DATA_SERVED]


@callback
def async_report(hass: HomeAssistant, result: SwapResult, path: str) -> None:
    """Raise or clear the restart_required issue after a swap or check."""
    if result is SwapResult.RESTART_REQUIRED:
        async_raise_restart_required(hass, path)
    elif result is not SwapResult.KEY_MISMATCH:
        async_delete_restart_required(hass)


async def async_swap_after_renewal(
    hass: HomeAssistant, cert_path: Path, key_path: Path
) -> SwapResult:
    """After a renewal, make the running server present the new certificate."""
    result = await served_certificate(hass).async_swap(cert_path, key_path)
    if result is not SwapResult.NOT_SERVED:
        async_report(hass, result, str(cert_path))
    return result
