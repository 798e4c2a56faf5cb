"""A served certificate nobody renews any more: a lasting warning until it is not.

Deleting an entry, or turning its certificate off, while Home Assistant
serves the managed files leaves a certificate that expires while served (Home
Assistant watches no expiry itself). The persistent ``served_not_renewed``
issue says so until Home Assistant no longer serves those files or an entry
manages them again.
"""

from __future__ import annotations

from collections.abc import Mapping

from homeassistant.components.http.config import async_get_and_load_store
from homeassistant.core import HomeAssistant

from .certificate_settings import CertificateSettings
from .const import DOMAIN, LOGGER
from .helpers import same_file
from .https_issues import (
    async_delete_served_not_renewed,
    async_raise_served_not_renewed,
    served_not_renewed_path,
)
from .https_store import (
    SSL_CERTIFICATE,
    async_running_serves,
    names_match,
    settings_of,
    without_meta,
)
from .https_urls import URL_KEYS, SetUrl
from .protocol.x509 import CertificateError, read_certificate_file
from .served import served_files


async def _async_served(hass: HomeAssistant, settings: CertificateSettings) -> bool:
    """The running server or the stable http config serves the pair."""
    if await async_running_serves(hass, settings):
        return True
    store = await async_get_and_load_store(hass)
    stable = without_meta(store.stable)
    return await hass.async_add_executor_job(names_match, stable, settings)


def _expiry(settings: CertificateSettings) -> str:
    try:
        info = read_certificate_file(settings.certificate_path)
    except CertificateError:
        return "-"
    return f"{info.not_after:%Y-%m-%d %H:%M} UTC"


def _urls_to_set_back(hass: HomeAssistant, set_urls: Mapping[str, SetUrl]) -> str:
    """``now → before`` for each URL the product set that is still as it set it."""
    back = [
        f"{url.after} → {url.before or '-'}"
        for key in URL_KEYS
        if (url := set_urls.get(key)) is not None
        and url.after
        and getattr(hass.config, key) == url.after
    ]
    return ", ".join(back) or "-"


async def async_warn_unmanaged(
    hass: HomeAssistant,
    settings: CertificateSettings | None,
    set_urls: Mapping[str, SetUrl],
) -> None:
    """The managed pair is no longer renewed: warn if Home Assistant serves it.

    ``set_urls`` are the URLs the product set for HTTPS: whoever stops
    serving on the Network page sets them back by hand.
    """
    if settings is None or not await _async_served(hass, settings):
        return
    expiry = await hass.async_add_executor_job(_expiry, settings)
    LOGGER.warning(
        "Home Assistant serves %s, which is no longer renewed (expires %s)",
        settings.certificate_path,
        expiry,
    )
    async_raise_served_not_renewed(
        hass,
        str(settings.certificate_path),
        str(settings.private_key_path),
        expiry,
        _urls_to_set_back(hass, set_urls),
    )


def _still_unmanaged(
    path: str, served: list[str], managed: list[CertificateSettings]
) -> bool:
    """Blocking: ``path`` is served and no entry manages it."""
    if not any(same_file(path, other) for other in served):
        return False
    return not any(same_file(path, s.certificate_path) for s in managed)


async def async_unmanaged_served(hass: HomeAssistant) -> bool:
    """The issue holds: its certificate is served and no entry renews it."""
    if (path := served_not_renewed_path(hass)) is None:
        return False
    store = await async_get_and_load_store(hass)
    stable = store.stable
    served = [str(stable[SSL_CERTIFICATE])] if SSL_CERTIFICATE in stable else []
    if (files := served_files(hass)) is not None:
        served.append(files.certificate)
    # An entry that is set up, or waits to be (DuckDNS down), renews it.
    managed = [
        settings
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.disabled_by is None and (settings := settings_of(entry)) is not None
    ]
    return await hass.async_add_executor_job(_still_unmanaged, path, served, managed)


async def async_check_unmanaged(hass: HomeAssistant) -> None:
    """Remove the issue once it no longer holds."""
    if served_not_renewed_path(hass) is None:
        return
    if not await async_unmanaged_served(hass):
        async_delete_served_not_renewed(hass)
