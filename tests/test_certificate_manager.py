"""The certificate manager's decisions and recovery, without a CA."""

from __future__ import annotations

from datetime import timedelta
import logging
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest

from custom_components.secure_remote_access.certificate import (
    CertificateManager,
    duckdns_domain_for,
)
from custom_components.secure_remote_access.certificate_settings import (
    CertificateSettings,
)
from custom_components.secure_remote_access.const import (
    CONF_ACME_DIRECTORY,
    CONF_CERTIFICATE_PATH,
    CONF_PRIVATE_KEY_PATH,
    DOMAIN,
)
from custom_components.secure_remote_access.helpers import (
    default_certificate_dir,
    path_is_allowed,
)
from custom_components.secure_remote_access.protocol.duckdns import DuckDnsClient
from custom_components.secure_remote_access.protocol.pairfiles import RecoveryStatus
from custom_components.secure_remote_access.protocol.schedule import RenewalReason
from custom_components.secure_remote_access.protocol.x509 import CertificateFileError
from custom_components.secure_remote_access.renewal import RenewalCoordinator
from tests.fakes import certs

from .common import TOKEN, mock_entry


def _manager(
    hass: HomeAssistant, tmp_path: Path, names: list[str]
) -> CertificateManager:
    settings = CertificateSettings(
        directory_url="https://ca.invalid/dir",
        names=tuple(names),
        certificate_path=tmp_path / "fullchain.pem",
        private_key_path=tmp_path / "privkey.pem",
    )
    client = DuckDnsClient(None, TOKEN)  # type: ignore[arg-type]
    return CertificateManager(hass, "entry", settings, client, names)


def test_duckdns_domain_for() -> None:
    """Challenges map to the DuckDNS name they live under."""
    domains = ["cabin.duckdns.org", "myhome.duckdns.org"]
    assert duckdns_domain_for("*.myhome.duckdns.org", domains) == "myhome.duckdns.org"
    assert duckdns_domain_for("a.cabin.duckdns.org.", domains) == "cabin.duckdns.org"
    with pytest.raises(ValueError):
        duckdns_domain_for("myhome.example.com", domains)


async def test_decisions(hass: HomeAssistant, tmp_path: Path) -> None:
    """Missing, unreadable, wrong names, wrong key, due by lifetime, ARI, fresh."""
    manager = _manager(hass, tmp_path, ["myhome.duckdns.org"])
    current = await manager.async_current()
    assert current is None
    assert (await manager.async_decide(None)).reason is RenewalReason.NO_CERTIFICATE
    (tmp_path / "fullchain.pem").write_text("garbage")
    assert await manager.async_current() is None
    assert (await manager.async_decide(None)).reason is RenewalReason.UNREADABLE

    certs.issue(["other.duckdns.org"]).write(tmp_path)
    other = await manager.async_current()
    assert other is not None
    decision = await manager.async_decide(other)
    assert decision.reason is RenewalReason.NAMES_CHANGED

    now = dt_util.utcnow()
    old_pair = certs.issue(
        ["myhome.duckdns.org"],
        key=certs.generate_key(slot=21),
        not_before=now - timedelta(days=80),
        not_after=now + timedelta(days=10),
    )
    old_pair.write(tmp_path)
    old = await manager.async_current()
    assert old is not None
    assert (await manager.async_decide(old)).reason is RenewalReason.LIFETIME

    fresh_pair = certs.issue(
        ["myhome.duckdns.org"],
        key=certs.generate_key(slot=22),
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=89),
    )
    fresh_pair.write(tmp_path)
    fresh = await manager.async_current()
    assert fresh is not None
    assert fresh.key_matches
    assert fresh.ari_id is not None
    decision = await manager.async_decide(fresh)
    assert not decision.due
    assert decision.due_at == fresh.info.not_before + timedelta(days=60)
    decision = await manager.async_decide(fresh, renew_at=now - timedelta(minutes=1))
    assert decision.reason is RenewalReason.ARI_WINDOW

    # Another tool replaced the certificate but not (yet) the key.
    certs.write_file(tmp_path / "fullchain.pem", old_pair.fullchain_pem)
    certs.write_file(tmp_path / "privkey.pem", fresh_pair.key_pem, 0o600)
    broken = await manager.async_current()
    assert broken is not None
    assert not broken.key_matches
    assert (await manager.async_decide(broken)).reason is RenewalReason.KEY_MISMATCH


@pytest.mark.parametrize(
    ("result", "logged"),
    [
        (RecoveryStatus.INTACT, False),
        (RecoveryStatus.ROLLED_FORWARD, True),
        (CertificateFileError("unreadable"), True),
    ],
)
async def test_recovery_is_reported(
    hass: HomeAssistant,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    result: object,
    logged: bool,
) -> None:
    """An interrupted install that had to be repaired is worth a warning."""
    manager = _manager(hass, tmp_path, ["myhome.duckdns.org"])
    with (
        caplog.at_level(logging.WARNING),
        patch(
            "custom_components.secure_remote_access.certificate.recover_pair",
            side_effect=[result] if isinstance(result, Exception) else None,
            return_value=result,
        ),
    ):
        await manager.async_recover()
    assert ("certificate" in caplog.text) is logged


async def test_allowed_paths(hass: HomeAssistant, tmp_path: Path) -> None:
    """Config directory, /ssl and allowlisted directories only, absolute paths only."""
    hass.config.allowlist_external_dirs = {str(tmp_path / "allowed")}
    (tmp_path / "allowed").mkdir()
    assert await hass.async_add_executor_job(
        path_is_allowed, hass, str(tmp_path / "allowed" / "x.pem")
    )
    assert await hass.async_add_executor_job(
        path_is_allowed, hass, hass.config.path("ssl", "fullchain.pem")
    )
    assert await hass.async_add_executor_job(path_is_allowed, hass, "/ssl/privkey.pem")
    assert not await hass.async_add_executor_job(path_is_allowed, hass, "relative.pem")
    assert not await hass.async_add_executor_job(path_is_allowed, hass, "/etc/x.pem")
    directory = await hass.async_add_executor_job(default_certificate_dir, hass)
    assert directory in (Path("/ssl"), Path(hass.config.path("ssl")))


async def test_checklist_audits_the_managed_key(
    hass: HomeAssistant, tmp_path: Path, aioclient_mock: Any
) -> None:
    """A managed key readable by others is a security finding; 0600 passes."""
    aioclient_mock.get(
        "https://www.duckdns.org/update", text="OK\n203.0.113.7\n\nNOCHANGE"
    )
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    pair = certs.issue(["myhome.duckdns.org"])
    _, key_path = pair.write(tmp_path)
    key_path.chmod(0o644)
    entry = mock_entry()
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry,
        options={
            CONF_ACME_DIRECTORY: "https://ca.invalid/dir",
            CONF_CERTIFICATE_PATH: str(tmp_path / "fullchain.pem"),
            CONF_PRIVATE_KEY_PATH: str(key_path),
        },
    )
    with patch.object(RenewalCoordinator, "_async_started", AsyncMock()):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        result = await hass.services.async_call(
            DOMAIN, "run_security_checks", blocking=True, return_response=True
        )
        assert result is not None
        failing = [finding["id"] for finding in result["findings"]]
        assert "private_key_world_readable" in failing
        key_path.chmod(0o600)
        result = await hass.services.async_call(
            DOMAIN, "run_security_checks", blocking=True, return_response=True
        )
        assert result is not None
        assert "private_key_world_readable" in result["passed"]
        await hass.config_entries.async_unload(entry.entry_id)
