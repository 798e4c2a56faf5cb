"""What Home Assistant's http config store says about the managed pair.

Home Assistant's store (``.storage/http``: a *stable* and a *pending* slot) is
the one truth about what its web server serves and what waits to be tried;
this module reads it for the managed certificate of an entry. Nothing here
writes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from homeassistant.components.http.config import (
    HTTP_CONFIG_CREATED_AT,
    HTTP_CONFIG_ERROR,
    HTTP_CONFIG_ERROR_MESSAGE,
    ActiveConfigType,
    ConfData,
    HTTPConfigStore,
)
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .certificate_settings import CertificateSettings
from .const import CONF_DOMAINS
from .helpers import same_file
from .protocol.x509 import DEFAULT_CLOCK_SKEW, CertificateError, read_matching_pair
from .served import served_files

SSL_CERTIFICATE: Final = "ssl_certificate"
SSL_KEY: Final = "ssl_key"
SERVER_PORT: Final = "server_port"
DEFAULT_HTTPS_PORT: Final = 443
_META: Final = (HTTP_CONFIG_CREATED_AT, HTTP_CONFIG_ERROR, HTTP_CONFIG_ERROR_MESSAGE)


class HttpsAction(StrEnum):
    """What a change of the http config does with the managed pair."""

    SERVE = "serve"
    STOP = "stop"


class HttpsRefusedError(Exception):
    """The change cannot be made; ``reason`` is a translated abort reason."""

    def __init__(self, reason: str, **placeholders: str) -> None:
        """Remember the reason and what its message shows."""
        super().__init__(reason)
        self.reason = reason
        self.placeholders = placeholders


def settings_of(entry: ConfigEntry[Any]) -> CertificateSettings | None:
    """The entry's certificate settings, None without a managed certificate."""
    return CertificateSettings.from_options(
        list(entry.data[CONF_DOMAINS]), entry.options
    )


def first_name(entry: ConfigEntry[Any]) -> str:
    """The entry's first DuckDNS name: the one its URLs use."""
    return str(entry.data[CONF_DOMAINS][0])


def https_url(entry: ConfigEntry[Any], port: int) -> str:
    """The address Home Assistant answers at once it serves the managed pair."""
    suffix = "" if port == DEFAULT_HTTPS_PORT else f":{port}"
    return f"https://{first_name(entry)}{suffix}"


def without_meta(config: ConfData) -> dict[str, Any]:
    """The settings of a slot without created_at and error."""
    return {k: v for k, v in config.items() if k not in _META}


def created_at(config: ConfData | None) -> str | None:
    """Which config a slot holds (None: an empty slot)."""
    return None if config is None else config.get(HTTP_CONFIG_CREATED_AT)


def names_match(config: dict[str, Any], settings: CertificateSettings) -> bool:
    """The config serves exactly the managed pair (blocking: resolves links)."""
    certificate, key = config.get(SSL_CERTIFICATE), config.get(SSL_KEY)
    return bool(
        certificate
        and key
        and same_file(certificate, settings.certificate_path)
        and same_file(key, settings.private_key_path)
    )


def _without_pair(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in (SSL_CERTIFICATE, SSL_KEY)}


def pending_action(
    store: HTTPConfigStore, settings: CertificateSettings
) -> HttpsAction | None:
    """What the pending config does with the managed pair, if that is all (blocking).

    Ours only when nothing but the two paths differs from the stable config:
    a change of the user or another tool that also touches other settings is
    theirs.
    """
    if (pending := store.pending) is None:
        return None
    new, old = without_meta(pending), without_meta(store.stable)
    if _without_pair(new) != _without_pair(old):
        return None
    if names_match(new, settings) and not names_match(old, settings):
        return HttpsAction.SERVE
    if names_match(old, settings) and SSL_CERTIFICATE not in new:
        return HttpsAction.STOP
    return None


def stable_done(
    store: HTTPConfigStore, settings: CertificateSettings, action: HttpsAction
) -> bool:
    """The stable config is what ``action`` asked for (blocking)."""
    stable = without_meta(store.stable)
    if action is HttpsAction.SERVE:
        return names_match(stable, settings)
    return SSL_CERTIFICATE not in stable


async def async_serves_managed(
    hass: HomeAssistant, entry: ConfigEntry[Any]
) -> bool | None:
    """True when the running server serves the managed pair, None without one."""
    if (settings := settings_of(entry)) is None:
        return None
    return await async_running_serves(hass, settings)


async def async_running_serves(
    hass: HomeAssistant, settings: CertificateSettings
) -> bool:
    """The running server serves the pair of ``settings``."""
    if (files := served_files(hass)) is None:
        return False
    served = {SSL_CERTIFICATE: files.certificate, SSL_KEY: files.key}
    return await hass.async_add_executor_job(names_match, served, settings)


async def async_managed_serial(
    hass: HomeAssistant, settings: CertificateSettings
) -> str:
    """The managed pair's serial, when it may be served; else HttpsRefusedError."""
    try:
        pair = await hass.async_add_executor_job(
            read_matching_pair, settings.certificate_path, settings.private_key_path
        )
    except CertificateError as err:
        raise HttpsRefusedError("https_certificate_unusable", error=str(err)) from err
    info = pair.certificate
    if info.not_before > dt_util.utcnow() + DEFAULT_CLOCK_SKEW:
        raise HttpsRefusedError(
            "https_certificate_not_yet_valid",
            date=f"{info.not_before:%Y-%m-%d %H:%M} UTC",
        )
    if info.is_expired(dt_util.utcnow()):
        raise HttpsRefusedError(
            "https_certificate_expired", date=f"{info.not_after:%Y-%m-%d %H:%M} UTC"
        )
    if missing := info.missing_names(settings.names):
        raise HttpsRefusedError("https_certificate_names", names=", ".join(missing))
    return info.serial_number


class Outcome(StrEnum):
    """Where a change of ours stands, read from the store's slots."""

    WAITING = "waiting"  # pending, not tried yet (no restart since)
    TRYING = "trying"  # the running server tries it
    KEPT = "kept"  # it is the stable config now
    FAILED = "failed"  # Home Assistant went back (error recorded on it)
    DROPPED = "dropped"  # undone, or replaced by something else


def classify(
    store: HTTPConfigStore,
    created: str,
    action: HttpsAction,
    settings: CertificateSettings,
) -> Outcome:
    """Where the change written as ``created`` stands (blocking: compares files).

    Its own config (by ``created_at``) decides first. Once it left both slots,
    the settings decide: another pending config doing the same is the same
    change (the caller adopts it), a stable config doing it means kept.
    """
    pending = store.pending
    if created_at(store.stable) == created:
        return Outcome.KEPT
    if pending is not None and created_at(pending) == created:
        if pending[HTTP_CONFIG_ERROR] is not None:
            return Outcome.FAILED
        if store.active_config_type is ActiveConfigType.PENDING:
            return Outcome.TRYING
        return Outcome.WAITING
    if stable_done(store, settings, action):
        return Outcome.KEPT
    return Outcome.DROPPED
