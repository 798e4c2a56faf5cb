"""Swap renewed certificates into Home Assistant's running web server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
import os
from pathlib import Path
import ssl
from typing import TYPE_CHECKING, Any, Final

from cryptography import x509
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.start import async_at_started

from .const import DOMAIN, LOGGER
from .protocol.certificates import CertificateError, read_certificate_file

if TYPE_CHECKING:
    from .certificate import CertificateManager

HANDSHAKE_TIMEOUT: Final = 10.0
RESTART_REQUIRED: Final = "restart_required"


class RotationResult(StrEnum):
    """What happened to the running server's certificate."""

    ROTATED = "rotated"
    UP_TO_DATE = "up_to_date"
    NOT_SERVED = "not_served"
    RESTART_REQUIRED = "restart_required"


@dataclass(frozen=True, slots=True)
class ServedFiles:
    """The files the running server was started with, and its TLS context."""

    certificate: str
    key: str | None
    context: ssl.SSLContext | None
    host: str
    port: int


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
    return ServedFiles(
        certificate=http.ssl_certificate,
        key=getattr(http, "ssl_key", None),
        context=getattr(http, "context", None),
        host=host,
        port=int(http.server_port),
    )


def _same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    try:
        return Path(first).resolve() == Path(second).resolve()
    except OSError:
        return False


async def async_served_serial(files: ServedFiles) -> str | None:
    """The serial number the server presents in a TLS handshake now."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            _, writer = await asyncio.open_connection(
                files.host, files.port, ssl=context, server_hostname=None
            )
    except (OSError, TimeoutError) as err:
        LOGGER.debug("Handshake with the local server failed: %s", err)
        return None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    if der is None:
        return None
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


async def async_rotate(
    hass: HomeAssistant, cert_path: Path, key_path: Path
) -> RotationResult:
    """Load the pair into the running server if it serves these files."""
    files = served_files(hass)
    if files is None or not _same_file(files.certificate, cert_path):
        return RotationResult.NOT_SERVED
    if files.key is not None and not _same_file(files.key, key_path):
        return RotationResult.NOT_SERVED
    try:
        wanted = await hass.async_add_executor_job(read_certificate_file, cert_path)
    except CertificateError as err:
        LOGGER.warning("Cannot read %s for rotation: %s", cert_path, err)
        return RotationResult.RESTART_REQUIRED
    if await async_served_serial(files) == wanted.serial_number:
        return RotationResult.UP_TO_DATE
    if files.context is None:
        return RotationResult.RESTART_REQUIRED
    try:
        await hass.async_add_executor_job(
            files.context.load_cert_chain, str(cert_path), str(key_path)
        )
    except (OSError, ssl.SSLError) as err:
        LOGGER.warning("Could not load the new certificate into the server: %s", err)
        return RotationResult.RESTART_REQUIRED
    served = await async_served_serial(files)
    if served != wanted.serial_number:
        LOGGER.warning(
            "The server still presents serial %s instead of %s",
            served,
            wanted.serial_number,
        )
        return RotationResult.RESTART_REQUIRED
    LOGGER.info("Home Assistant now serves certificate %s", wanted.serial_number)
    return RotationResult.ROTATED


def restart_issue_id(entry_id: str) -> str:
    """The Repairs issue raised when only a restart brings the new certificate."""
    return f"{RESTART_REQUIRED}_{entry_id}"


async def async_rotate_and_report(
    hass: HomeAssistant, entry_id: str, cert_path: Path, key_path: Path
) -> RotationResult:
    """Rotate, then raise or clear the restart_required issue."""
    result = await async_rotate(hass, cert_path, key_path)
    issue_id = restart_issue_id(entry_id)
    if result is RotationResult.RESTART_REQUIRED:
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            is_fixable=True,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=RESTART_REQUIRED,
            translation_placeholders={"path": str(cert_path)},
            data={"entry_id": entry_id},
        )
    elif result is not RotationResult.NOT_SERVED:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
    return result


async def async_rotate_after_renewal(
    hass: HomeAssistant, entry_id: str, manager: CertificateManager
) -> RotationResult:
    """After a renewal, make the running server present the new certificate."""
    settings = manager.settings
    return await async_rotate_and_report(
        hass, entry_id, settings.certificate_path, settings.private_key_path
    )


async def async_check_served(hass: HomeAssistant, entry_id: str) -> RotationResult:
    """Rotate when the served certificate is older than its file on disk.

    Catches certificates renewed behind our back (an add-on, by hand).
    """
    files = served_files(hass)
    if files is None:
        return RotationResult.NOT_SERVED
    cert_path = Path(files.certificate)
    return await async_rotate_and_report(
        hass, entry_id, cert_path, Path(files.key) if files.key else cert_path
    )


SERVED_CHECK_INTERVAL: Final = timedelta(hours=1)


@callback
def async_watch_served_certificate(hass: HomeAssistant, entry_id: str) -> CALLBACK_TYPE:
    """Check the served certificate hourly once Home Assistant has started."""
    unsubs: list[CALLBACK_TYPE] = []

    async def _check(_now: Any = None) -> None:
        await async_check_served(hass, entry_id)

    async def _started(_hass: HomeAssistant) -> None:
        unsubs.append(
            async_track_time_interval(
                hass, _check, SERVED_CHECK_INTERVAL, cancel_on_shutdown=True
            )
        )
        await _check()

    unsubs.append(async_at_started(hass, _started))

    @callback
    def _stop() -> None:
        for unsub in unsubs:
            unsub()

    return _stop
