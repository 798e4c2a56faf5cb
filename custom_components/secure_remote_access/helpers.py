"""Small Home Assistant helpers shared by the flows, the entry setup and coordinators."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any

from homeassistant.const import CONF_TOKEN
from homeassistant.core import CALLBACK_TYPE, HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import (
    CONF_ACME_DIRECTORY,
    CONF_CERTIFICATE_PATH,
    CONF_DUCKDNS_URL,
    CONF_ENDPOINTS,
    CONF_PRIVATE_KEY_PATH,
    DOMAIN,
    LOGGER,
    MAX_ENDPOINTS,
    SECTION_TESTING,
)
from .protocol.confined import is_confined
from .protocol.duckdns import DEFAULT_UPDATE_URL, DuckDnsClient
from .protocol.endpoint_list import (
    EndpointOption,
    InvalidEndpointListError,
    parse_endpoints,
)
from .protocol.tls import build_verify_context
from .protocol.x509 import CertificateError


def duckdns_client(hass: HomeAssistant, data: Mapping[str, Any]) -> DuckDnsClient:
    """Build a DuckDNS client on Home Assistant's shared session for entry data."""
    return DuckDnsClient(
        async_get_clientsession(hass),
        data[CONF_TOKEN],
        base_url=data.get(CONF_DUCKDNS_URL) or DEFAULT_UPDATE_URL,
    )


def flatten_sections(values: Mapping[str, Any]) -> dict[str, Any]:
    """Form input with the fields of its collapsed testing section at top level."""
    flat = {k: v for k, v in values.items() if k != SECTION_TESTING}
    flat.update(values.get(SECTION_TESTING) or {})
    return flat


SSL_DIR = Path("/ssl")


def allowed_roots(hass: HomeAssistant) -> list[str]:
    """The folders files may be read from and written to: the configuration
    directory, /ssl (Home Assistant OS's) and ``allowlist_external_dirs``."""
    roots = [hass.config.config_dir, str(SSL_DIR)]
    roots += sorted(hass.config.allowlist_external_dirs)
    return list(dict.fromkeys(roots))


def path_is_allowed(hass: HomeAssistant, path: str) -> bool:
    """True for absolute paths whose real path is inside `allowed_roots`.

    Blocking (resolves symbolic links): run it in the executor.
    """
    return Path(path).is_absolute() and is_confined(path, allowed_roots(hass))


def default_certificate_dir(hass: HomeAssistant) -> Path:
    """/ssl where it exists (Home Assistant OS), else ssl/ in the config directory.

    Blocking (checks the file system): run it in the executor.
    """
    if SSL_DIR.is_dir():
        return SSL_DIR
    return Path(hass.config.path("ssl"))


def same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """True when both paths lead to the same file (blocking)."""
    return os.path.realpath(first) == os.path.realpath(second)


def endpoints_from_options(options: Mapping[str, Any]) -> list[EndpointOption]:
    """The endpoints an entry's options list."""
    return [
        EndpointOption.from_option(item) for item in options.get(CONF_ENDPOINTS, [])
    ]


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    """The options form's endpoint list, checked."""

    endpoints: list[EndpointOption]
    error: str | None = None
    detail: str = ""


def check_endpoint_text(hass: HomeAssistant, text: str) -> EndpointCheck:
    """Parse the list and check every CA bundle. Blocking: run in the executor."""
    try:
        endpoints = parse_endpoints(text)
    except InvalidEndpointListError as err:
        lines = "; ".join(f"{number}: “{line}”" for number, line in err.lines)
        return EndpointCheck([], "invalid_endpoint", lines)
    if len(endpoints) > MAX_ENDPOINTS:
        return EndpointCheck([], "too_many_endpoints", str(len(endpoints)))
    for endpoint in endpoints:
        if endpoint.ca_bundle is None:
            continue
        if not path_is_allowed(hass, endpoint.ca_bundle):
            return EndpointCheck([], "ca_bundle_not_allowed", endpoint.ca_bundle)
        try:
            build_verify_context(endpoint.ca_bundle)
        except CertificateError as err:
            LOGGER.debug("CA bundle %s not usable: %s", endpoint.ca_bundle, err)
            return EndpointCheck([], "ca_bundle_unreadable", endpoint.ca_bundle)
    return EndpointCheck(endpoints)


def cancel_callback(unsubscribe: CALLBACK_TYPE | None) -> None:
    """Stop a timer or listener, if there is one."""
    if unsubscribe is not None:
        unsubscribe()


def files_of_other_entries(
    hass: HomeAssistant, own_entry_id: str
) -> dict[str, list[str]]:
    """The certificate and key files the other entries write: title -> files."""
    taken: dict[str, list[str]] = {}
    for entry in hass.config_entries.async_entries(DOMAIN):
        options = entry.options
        if entry.entry_id == own_entry_id or not options.get(CONF_ACME_DIRECTORY):
            continue
        files = [options.get(CONF_CERTIFICATE_PATH), options.get(CONF_PRIVATE_KEY_PATH)]
        taken[entry.title] = [file for file in files if file]
    return taken
