"""Reverse proxies in front of Home Assistant, and who serves the managed certificate.

Two signals: Home Assistant trusting ``X-Forwarded-For`` from
``trusted_proxies`` (every proxy needs that: Apache or NGINX on the network,
a Cloudflare tunnel, the add-ons), and, on Home Assistant OS, the running
add-ons the Supervisor lists that are known to proxy Home Assistant. Such
proxies talk plain HTTP to Home Assistant's port; they break when Home
Assistant itself serves HTTPS.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohasupervisor import SupervisorError
from homeassistant.components.http.config import (
    ActiveConfigType,
    async_get_and_load_store,
)
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers.hassio import is_hassio

from .const import LOGGER
from .helpers import same_file
from .https_store import async_serves_managed, settings_of, without_meta
from .served import served_files

if TYPE_CHECKING:
    from aiohasupervisor import SupervisorClient

#: The Supervisor maps the same ``/ssl`` into Home Assistant and the add-ons.
ADDON_SSL_DIR: Final = Path("/ssl")
SUPERVISOR_TIMEOUT: Final = 10.0
RUNNING: Final = "started"
HTTPS_PORT: Final = "443/tcp"
#: The Supervisor's networks of Home Assistant and its add-ons (its
#: DOCKER_IPV4_NETWORK_MASK and DOCKER_IPV6_NETWORK_MASK).
SUPERVISOR_NETWORKS: Final = (
    IPv4Network("172.30.32.0/23"),
    IPv6Network("fd0c:ac1e:2100::/48"),
)
USE_X_FORWARDED_FOR: Final = "use_x_forwarded_for"
TRUSTED_PROXIES: Final = "trusted_proxies"


class ProxyKind(StrEnum):
    """What is in front of Home Assistant."""

    NGINX_ADDON = "nginx_addon"
    CLOUDFLARED = "cloudflared"
    NGINX_PROXY_MANAGER = "nginx_proxy_manager"
    TRAEFIK = "traefik"
    CADDY = "caddy"
    TRUSTED_PROXY = "trusted_proxy"


#: Add-ons known to proxy Home Assistant, by slug (store add-ons carry a
#: prefix that depends on their repository's URL: matched by the part after it).
ADDON_SLUGS: Final = {
    "core_nginx_proxy": ProxyKind.NGINX_ADDON,  # NGINX Home Assistant SSL proxy
}
ADDON_SUFFIXES: Final = {
    "cloudflared": ProxyKind.CLOUDFLARED,  # brenner-tobias/ha-addons: 9074a9fa_cloudflared
    "nginxproxymanager": ProxyKind.NGINX_PROXY_MANAGER,  # a0d7b954_nginxproxymanager
    "traefik": ProxyKind.TRAEFIK,  # alex3305/home-assistant-addons
    "caddy-2": ProxyKind.CADDY,  # einschmidt/hassio-addons: c80c7555_caddy-2
    "caddy": ProxyKind.CADDY,
}
#: Proxies that may read the managed files from /ssl: restarting them serves a
#: renewed certificate. Cloudflare's edge and NGINX Proxy Manager bring their own.
RESTARTABLE: Final = frozenset(
    {ProxyKind.NGINX_ADDON, ProxyKind.TRAEFIK, ProxyKind.CADDY}
)


def addon_kind(slug: str) -> ProxyKind | None:
    """The proxy kind of an add-on slug, None for other add-ons."""
    if (kind := ADDON_SLUGS.get(slug)) is not None:
        return kind
    _, _, name = slug.partition("_")
    return ADDON_SUFFIXES.get(name)


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy in front of Home Assistant."""

    kind: ProxyKind
    name: str
    """The add-on's name as the Supervisor gives it, or the trusted addresses."""
    slug: str | None = None
    certificate: str | None = None
    """Where it reads its certificate (the NGINX add-on: /ssl/<certfile>)."""
    key: str | None = None
    tls_port: int | None = None
    """The host port of its HTTPS listener (Home Assistant reaches it locally)."""

    @property
    def restartable(self) -> bool:
        """A Supervisor add-on that may serve the managed files after a restart."""
        return self.slug is not None and self.kind in RESTARTABLE


@dataclass(frozen=True, slots=True)
class ProxyReport:
    """The proxies found, and whether the Supervisor could be asked."""

    proxies: tuple[Proxy, ...]
    supervisor_error: str | None = None

    @property
    def names(self) -> str:
        """The proxies' names for a sentence."""
        return ", ".join(proxy.name for proxy in self.proxies)

    def addon(self, slug: str | None) -> Proxy | None:
        """The add-on proxy with this slug."""
        return next((p for p in self.proxies if slug and p.slug == slug), None)


def proxy_from_info(slug: str, name: str, options: Any, network: Any) -> Proxy | None:
    """A proxy from the Supervisor's add-on info (None: not a known proxy)."""
    if (kind := addon_kind(slug)) is None:
        return None
    certificate = key = None
    if kind is ProxyKind.NGINX_ADDON and isinstance(options, dict):
        certificate = str(ADDON_SSL_DIR / str(options.get("certfile", "fullchain.pem")))
        key = str(ADDON_SSL_DIR / str(options.get("keyfile", "privkey.pem")))
    port = (network or {}).get(HTTPS_PORT) if isinstance(network, dict) else None
    return Proxy(
        kind, name, slug, certificate, key, int(port) if port is not None else None
    )


def supervisor_client(hass: HomeAssistant) -> SupervisorClient:
    """The hassio integration's Supervisor client (imported late: OS only)."""
    from homeassistant.components.hassio import get_supervisor_client

    return get_supervisor_client(hass)


async def async_addon_proxy(hass: HomeAssistant, slug: str) -> Proxy | None:
    """One add-on's proxy details from the Supervisor (raises SupervisorError)."""
    info = await supervisor_client(hass).addons.addon_info(slug)
    return proxy_from_info(slug, info.name, info.options, info.network)


async def _async_running_addons(hass: HomeAssistant) -> list[Proxy]:
    """The running add-ons known to proxy Home Assistant (raises SupervisorError)."""
    found = []
    for addon in await supervisor_client(hass).addons.list():
        if addon_kind(addon.slug) is None or str(addon.state) != RUNNING:
            continue
        if (proxy := await async_addon_proxy(hass, addon.slug)) is not None:
            found.append(proxy)
    return found


async def _async_trusted_proxies(hass: HomeAssistant) -> list[str]:
    """The proxies the running http config trusts with X-Forwarded-For."""
    store = await async_get_and_load_store(hass)
    running = store.stable
    if store.active_config_type is ActiveConfigType.PENDING and store.pending:
        running = store.pending
    config = without_meta(running)
    if not config.get(USE_X_FORWARDED_FOR):
        return []
    return [str(proxy) for proxy in config.get(TRUSTED_PROXIES) or []]


async def async_proxies_in_front(hass: HomeAssistant) -> ProxyReport:
    """Every proxy found in front of Home Assistant (never raises)."""
    error = None
    addons: list[Proxy] = []
    if is_hassio(hass):
        try:
            async with asyncio.timeout(SUPERVISOR_TIMEOUT):
                addons = await _async_running_addons(hass)
        except TimeoutError:
            error = f"no answer within {SUPERVISOR_TIMEOUT:g} s"
        except SupervisorError as err:
            error = str(err) or type(err).__name__
        if error is not None:
            LOGGER.warning("The Supervisor could not list the add-ons: %s", error)
    trusted = await _async_trusted_proxies(hass)
    if addons:
        # Trusted addresses outside the add-ons' network: a proxy of their own.
        if others := [net for net in trusted if not _supervisor_network(net)]:
            addons.append(Proxy(ProxyKind.TRUSTED_PROXY, ", ".join(others)))
        return ProxyReport(tuple(addons), error)
    if trusted:
        proxy = Proxy(ProxyKind.TRUSTED_PROXY, ", ".join(trusted))
        return ProxyReport((proxy,), error)
    return ProxyReport((), error)


def _supervisor_network(network: str) -> bool:
    parsed = ip_network(network, strict=False)
    return any(
        parsed.version == own.version and parsed.subnet_of(own)  # type: ignore[arg-type]
        for own in SUPERVISOR_NETWORKS
    )


def reads_managed(proxy: Proxy, certificate: Path, key: Path) -> bool:
    """The proxy reads exactly the managed pair (blocking: resolves links)."""
    return bool(
        proxy.certificate
        and proxy.key
        and same_file(proxy.certificate, certificate)
        and same_file(proxy.key, key)
    )


@dataclass(frozen=True, slots=True)
class CertificateServer:
    """Who presents the managed certificate to clients, and on which local port."""

    name: str
    """"Home Assistant" or the proxy add-on's name."""
    port: int | None
    proxy: Proxy | None = None


async def async_who_serves_managed(
    hass: HomeAssistant, entry: ConfigEntry[Any]
) -> CertificateServer | None:
    """Home Assistant or its proxy serves the entry's managed certificate; else None.

    Home Assistant when its running web server serves the managed pair; a
    proxy add-on when it reads the managed files; None otherwise (including
    no managed certificate).
    """
    if (settings := settings_of(entry)) is None:
        return None
    if await async_serves_managed(hass, entry) and (files := served_files(hass)):
        return CertificateServer("Home Assistant", files.port)
    report = await async_proxies_in_front(hass)
    for proxy in report.proxies:
        if await hass.async_add_executor_job(
            reads_managed, proxy, settings.certificate_path, settings.private_key_path
        ):
            return CertificateServer(proxy.name, proxy.tls_port, proxy)
    return None
