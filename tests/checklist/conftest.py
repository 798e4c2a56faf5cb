"""A real Home Assistant installation to audit: http, users, MFA, files."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import importlib
from pathlib import Path
from typing import Any
from unittest.mock import patch

from aiohasupervisor import SupervisorNotFoundError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from homeassistant.auth.const import GROUP_ID_ADMIN
from homeassistant.auth.mfa_modules import auth_mfa_module_from_config
from homeassistant.auth.models import User
from homeassistant.components.http import make_server
from homeassistant.components.http.config import (
    HTTP_STORAGE_SCHEMA,
    ConfData,
    async_get_and_load_store,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

from custom_components.secure_remote_access.checklist.models import ChecklistResult
from custom_components.secure_remote_access.checklist.runner import DATA_CHECKLIST
from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.served import SwapResult
from tests.common import mock_duckdns, mock_entry
from tests.fakes import certs

SYSTEM_INFO = (
    "custom_components.secure_remote_access.checklist.snapshot.async_get_system_info"
)
IS_HASSIO = "custom_components.secure_remote_access.checklist.snapshot.is_hassio"
# Imported here so that patching it works before anything else imported it.
importlib.import_module("homeassistant.components.hassio")
SUPERVISOR_CLIENT = "homeassistant.components.hassio.get_supervisor_client"
EXTERNAL_URL = "https://myhome.duckdns.org"
SAFE_HTTP: dict[str, Any] = {
    "ip_ban_enabled": True,
    "login_attempts_threshold": 5,
    "use_x_frame_options": True,
}


def write_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and its key (mode 0600)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "myhome.duckdns.org")])
    now = datetime.now(UTC)
    cert = certs.bare_certificate(
        name,
        key=key,
        serial=x509.random_serial_number(),
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=60),
    )
    cert_path = directory / "fullchain.pem"
    key_path = directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class FakeAddon:
    """The fields of the Supervisor's add-on info the snapshot reads."""

    name: str
    options: dict[str, Any]
    network: dict[str, int | None] | None = field(
        default_factory=lambda: {"22/tcp": 22}
    )
    state: str = "started"


class FakeAddons:
    """The Supervisor client's add-ons API over a dict of installed add-ons."""

    def __init__(self, installed: dict[str, FakeAddon]) -> None:
        """Serve these add-ons; others are not installed."""
        self.installed = installed
        self.calls: list[str] = []

    async def addon_info(self, slug: str) -> FakeAddon:
        """What the Supervisor answers for one add-on."""
        self.calls.append(slug)
        if slug not in self.installed:
            raise SupervisorNotFoundError(f"Addon {slug} does not exist")
        return self.installed[slug]


class FakeSupervisor:
    """Stands in for aiohasupervisor's SupervisorClient."""

    def __init__(self, installed: dict[str, FakeAddon]) -> None:
        """Serve these add-ons."""
        self.addons = FakeAddons(installed)


@dataclass
class Installation:
    """The audited installation and the knobs tests turn."""

    hass: HomeAssistant
    config_dir: Path
    cert: Path
    key: Path
    owner: User
    system_info: dict[str, Any]

    async def apply_http(self, **settings: Any) -> None:
        """Store http settings and restart the HTTP server with them, like a restart."""
        store = await async_get_and_load_store(self.hass)
        settings = {
            "ssl_certificate": str(self.cert),
            "ssl_key": str(self.key),
            **SAFE_HTTP,
            **settings,
        }
        conf = HTTP_STORAGE_SCHEMA({k: v for k, v in settings.items() if v is not None})
        await store.async_set_pending(
            ConfData(**conf, created_at="", error=None, error_message=None)
        )
        active = await store.async_activate_config()
        if store.pending is not None:
            await store.async_promote_pending()
        server = make_server(self.hass, active)
        await server.async_initialize(
            cors_origins=active["cors_allowed_origins"],
            use_x_forwarded_for=active.get("use_x_forwarded_for", False),
            login_threshold=active["login_attempts_threshold"],
            is_ban_enabled=active["ip_ban_enabled"],
            use_x_frame_options=active["use_x_frame_options"],
        )
        self.hass.http = server

    def write_config(self, text: str, name: str = "configuration.yaml") -> None:
        """Write a YAML file of the configuration folder."""
        path = self.config_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    async def run(self) -> ChecklistResult:
        """Run the checklist now through the shared runner."""
        return await self.hass.data[DATA_CHECKLIST].async_run()

    def issue(self, issue_id: str) -> ir.IssueEntry | None:
        """The checklist's Repairs issue of one check."""
        return ir.async_get(self.hass).async_get_issue(DOMAIN, issue_id)

    def issue_ids(self) -> set[str]:
        """The ids of the integration's Repairs issues."""
        return {
            issue_id
            for (domain, issue_id) in ir.async_get(self.hass).issues
            if domain == DOMAIN
        }


async def add_admin(
    hass: HomeAssistant, name: str, *, mfa: bool = False, owner: bool = False
) -> User:
    """A real administrator, optionally with the real TOTP module set up."""
    user = await hass.auth.async_create_user(name, group_ids=[GROUP_ID_ADMIN])
    assert user.is_owner is owner
    if mfa:
        await hass.auth.async_enable_user_mfa(user, "totp", {})
    return user


@pytest.fixture
def system_info() -> Generator[dict[str, Any]]:
    """Installation type and user; everything else of system info is real."""
    info: dict[str, Any] = {"installation_type": "Home Assistant OS", "user": "root"}

    async def fake(hass: HomeAssistant) -> dict[str, Any]:
        return dict(info)

    with patch(SYSTEM_INFO, fake):
        yield info


@pytest.fixture
async def installation(
    hass: HomeAssistant,
    tmp_path: Path,
    hass_storage: dict[str, Any],
    system_info: dict[str, Any],
) -> Installation:
    """A safe installation: TLS, bans, MFA owner, https URL, clean YAML."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    hass.config.config_dir = str(config_dir)
    (config_dir / "configuration.yaml").write_text(
        "homeassistant:\n  name: Home\nmqtt:\n  password: !secret mqtt_password\n",
        encoding="utf-8",
    )
    cert, key = write_certificate(tmp_path / "ssl")
    stable = HTTP_STORAGE_SCHEMA(
        {"ssl_certificate": str(cert), "ssl_key": str(key), **SAFE_HTTP}
    )
    hass_storage["http"] = {
        "version": 2,
        "minor_version": 2,
        "key": "http",
        "data": {
            "stable": {
                **stable,
                "created_at": "",
                "error": None,
                "error_message": None,
            },
            "pending": None,
            "yaml_migration_done": True,
        },
    }
    assert await async_setup_component(hass, "http", {})
    await hass.config.async_update(external_url=EXTERNAL_URL)
    totp = await auth_mfa_module_from_config(hass, {"type": "totp"})
    hass.auth._mfa_modules[totp.id] = totp
    owner = await add_admin(hass, "Owner", mfa=True, owner=True)
    return Installation(hass, config_dir, cert, key, owner, system_info)


@pytest.fixture
async def entry(
    hass: HomeAssistant,
    installation: Installation,
    aioclient_mock: AiohttpClientMocker,
) -> AsyncGenerator[MockConfigEntry]:
    """A loaded entry; the checklist has run once."""
    mock_duckdns(aioclient_mock)
    config_entry = mock_entry()
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    yield config_entry


@pytest.fixture(autouse=True)
def no_served_certificate_handshakes() -> Generator[None]:
    """The http server is never started here: skip the hourly served-certificate check."""
    with patch(
        "custom_components.secure_remote_access.served.ServedCertificate.async_check"
    ) as check:
        check.return_value = SwapResult.NOT_SERVED
        yield
