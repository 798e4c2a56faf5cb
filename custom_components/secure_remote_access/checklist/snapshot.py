"""Collect one snapshot of the running installation for the checks.

This is the only place of the checklist that reads Home Assistant. Secrets
never enter the snapshot: add-on options are reduced to booleans as soon as
they arrive, and the YAML scan returns counts and file names only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeassistant import const as ha_const
from homeassistant.components.http.ban import KEY_BAN_MANAGER, KEY_LOGIN_THRESHOLD
from homeassistant.components.http.config import DATA_STORE, ActiveConfigType
from homeassistant.components.http.const import (
    CONF_LOGIN_ATTEMPTS_THRESHOLD,
    CONF_USE_X_FORWARDED_FOR,
    CONF_USE_X_FRAME_OPTIONS,
    NO_LOGIN_ATTEMPT_THRESHOLD,
)
from homeassistant.config import YAML_CONFIG_FILE
from homeassistant.core import HomeAssistant
from homeassistant.helpers.hassio import is_hassio
from homeassistant.helpers.system_info import async_get_system_info

from custom_components.secure_remote_access.const import LOGGER

from .checks import ADDON_COMMUNITY_SSH, ADDON_CORE_SSH, SSH_ADDONS
from .models import (
    HttpSettings,
    KeyFile,
    SecretsScan,
    Snapshot,
    SshAddon,
    TrustedNetworksProvider,
    UserInfo,
)
from .yaml_scan import scan_configuration

if TYPE_CHECKING:
    from homeassistant.components.http.server import HomeAssistantHTTP

TRUSTED_NETWORKS: str = "trusted_networks"
SSH_PORT: str = "22/tcp"
RUNNING_STATES: frozenset[str] = frozenset({"started", "startup"})


async def async_collect_snapshot(
    hass: HomeAssistant, extra_key_files: Iterable[str] = ()
) -> Snapshot:
    """Read everything the checks need, once."""
    http = http_settings(hass)
    system = await async_get_system_info(hass)
    supervisor = is_hassio(hass)
    key_paths = sorted(
        {*extra_key_files, *([http.ssl_key] if http and http.ssl_key else [])}
    )
    secrets, key_files = await hass.async_add_executor_job(
        read_files, Path(hass.config.path(YAML_CONFIG_FILE)), key_paths
    )
    return Snapshot(
        version=ha_const.__version__,
        installation_type=system.get("installation_type"),
        run_as_user=system.get("user"),
        external_url=hass.config.external_url,
        cloud_remote_ui=cloud_remote_ui(hass),
        http=http,
        trusted_networks=trusted_networks(hass),
        users=await async_users(hass),
        supervisor=supervisor,
        ssh_addons=await async_ssh_addons(hass) if supervisor else (),
        secrets=secrets,
        key_files=key_files,
    )


def _active_http_config(hass: HomeAssistant) -> Mapping[str, Any]:
    """The stored http settings the running server was started with."""
    if (store := hass.data.get(DATA_STORE)) is None:
        return {}
    match store.active_config_type:
        case ActiveConfigType.PENDING:
            return store.pending or store.stable
        case ActiveConfigType.STABLE:
            return store.stable
    return store.default


def http_settings(hass: HomeAssistant) -> HttpSettings | None:
    """The live settings of the HTTP server; None when it is not set up."""
    server: HomeAssistantHTTP | None = getattr(hass, "http", None)
    if server is None:
        return None
    conf = _active_http_config(hass)
    return HttpSettings(
        ssl_certificate=server.ssl_certificate,
        ssl_key=server.ssl_key,
        trusted_proxies=tuple(str(proxy) for proxy in server.trusted_proxies),
        use_x_forwarded_for=bool(conf.get(CONF_USE_X_FORWARDED_FOR, False)),
        ip_ban_enabled=server.app.get(KEY_BAN_MANAGER) is not None,
        login_attempts_threshold=server.app.get(
            KEY_LOGIN_THRESHOLD,
            conf.get(CONF_LOGIN_ATTEMPTS_THRESHOLD, NO_LOGIN_ATTEMPT_THRESHOLD),
        ),
        use_x_frame_options=bool(conf.get(CONF_USE_X_FRAME_OPTIONS, True)),
    )


def cloud_remote_ui(hass: HomeAssistant) -> bool:
    """True when Home Assistant Cloud's remote UI reaches this instance."""
    if "cloud" not in hass.config.components:
        return False
    from homeassistant.components.cloud import CloudNotAvailable, async_remote_ui_url

    try:
        async_remote_ui_url(hass)
    except CloudNotAvailable:
        return False
    return True


def trusted_networks(hass: HomeAssistant) -> tuple[TrustedNetworksProvider, ...]:
    """The trusted_networks auth providers."""
    return tuple(
        TrustedNetworksProvider(
            allow_bypass_login=bool(provider.config.get("allow_bypass_login", False)),
            networks=tuple(
                str(network) for network in provider.config.get(TRUSTED_NETWORKS, [])
            ),
        )
        for provider in hass.auth.auth_providers
        if provider.type == TRUSTED_NETWORKS
    )


async def async_users(hass: HomeAssistant) -> tuple[UserInfo, ...]:
    """Users, with the MFA modules of the active administrators."""
    users: list[UserInfo] = []
    for user in await hass.auth.async_get_users():
        mfa: tuple[str, ...] = ()
        if user.is_admin and user.is_active and not user.system_generated:
            mfa = tuple(await hass.auth.async_get_enabled_mfa(user))
        users.append(
            UserInfo(
                name=user.name or user.id,
                is_admin=user.is_admin,
                is_active=user.is_active,
                system_generated=user.system_generated,
                mfa_modules=mfa,
            )
        )
    return tuple(users)


def reduce_ssh_addon(
    slug: str,
    name: str,
    state: str,
    network: Mapping[str, int | None] | None,
    options: Mapping[str, Any],
) -> SshAddon:
    """Reduce an SSH add-on's options to what the checks need, at once.

    The official add-on logs everyone in as root; the community add-on uses
    the configured ``ssh.username``. Both run their SSH server only while the
    port 22/tcp is mapped to a host port.
    """
    if slug == ADDON_COMMUNITY_SSH:
        ssh = options.get("ssh") or {}
        password_set = bool(ssh.get("password"))
        root = str(ssh.get("username") or "").lower() == "root"
    else:
        password_set = bool(options.get("password"))
        root = slug == ADDON_CORE_SSH
    host_port = (network or {}).get(SSH_PORT)
    return SshAddon(
        slug=slug,
        name=name,
        running=str(state) in RUNNING_STATES,
        port_exposed=bool(network) and (network or {}).get(SSH_PORT) is not None,
        password_login=password_set,
        root_login=root,
        host_port=int(host_port) if host_port is not None else None,
    )


async def async_ssh_addons(hass: HomeAssistant) -> tuple[SshAddon, ...]:
    """The installed SSH add-ons, through the Supervisor (unreadable ones skipped)."""
    addons, _complete = await async_read_ssh_addons(hass)
    return addons


async def async_read_ssh_addons(
    hass: HomeAssistant,
) -> tuple[tuple[SshAddon, ...], bool]:
    """The installed SSH add-ons, and whether the Supervisor answered for each."""
    from aiohasupervisor import SupervisorError, SupervisorNotFoundError
    from homeassistant.components.hassio import get_supervisor_client

    client = get_supervisor_client(hass)
    addons: list[SshAddon] = []
    complete = True
    for slug in SSH_ADDONS:
        try:
            info = await client.addons.addon_info(slug)
        except SupervisorNotFoundError:
            continue
        except SupervisorError as err:
            LOGGER.debug("Could not read the %s add-on: %s", slug, type(err).__name__)
            complete = False
            continue
        addons.append(
            reduce_ssh_addon(slug, info.name, info.state, info.network, info.options)
        )
    return tuple(addons), complete


def read_files(
    config_file: Path, key_paths: Iterable[str]
) -> tuple[SecretsScan, tuple[KeyFile, ...]]:
    """Blocking: scan the YAML configuration and stat the key files."""
    keys: list[KeyFile] = []
    for path in key_paths:
        try:
            mode: int | None = os.stat(path).st_mode & 0o777
        except OSError:
            mode = None
        keys.append(KeyFile(path=path, mode=mode))
    return scan_configuration(config_file), tuple(keys)
