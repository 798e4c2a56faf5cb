"""Certificate writes confined to the allowed folders, through Home Assistant.

The paths were allowed when they were configured; a symbolic link changed
later (``privkey.pem -> ../outside/victim.conf``) must make the renewal fail
with a translated reason (the action's error, the Repairs issue and its fix
flow), write nothing and delete nothing; the certificate already obtained is
kept and written once the link points back inside. Real files and links.
"""

from __future__ import annotations

from datetime import timedelta
import logging
import os
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.repairs import repairs_flow_manager
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_get_translations
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

from custom_components.secure_remote_access.const import (
    CONF_ACME_DIRECTORY,
    CONF_ACME_DIRECTORY_URL,
    CONF_DOMAINS,
    CONF_KEY_TYPE,
    CONF_VALIDATION_METHOD,
    DOMAIN,
    VALIDATION_AUTOMATIC,
)
from tests.fakes.issuer import FakeCa

from .common import (
    managed_options,
    mock_entry,
    renew,
    setup_integration,
    setup_until_first_check,
)

VICTIM = b"# a configuration file Home Assistant must never overwrite\n"
RESULT = "sensor.myhome_duckdns_org_last_renewal_result"


def _listing(root: Path) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_bytes()
    return found


@pytest.fixture
async def managed(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    fake_ca: FakeCa,
    mock_duckdns: AiohttpClientMocker,
) -> MockConfigEntry:
    """An entry whose certificate (in ssl/live/, ssl/ allowlisted) was obtained."""
    live = tmp_path / "ssl" / "live"
    live.mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.conf").write_bytes(VICTIM)
    hass.config.allowlist_external_dirs = {str(tmp_path / "ssl")}
    entry = mock_entry(managed_options(live / "fullchain.pem", live / "privkey.pem"))
    await setup_until_first_check(hass, freezer, entry)
    assert (live / "privkey.pem").is_file()
    assert fake_ca.orders == 1
    return entry


async def test_a_key_link_to_outside_fails_the_renewal_and_writes_nothing(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    managed: MockConfigEntry,
    fake_ca: FakeCa,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Refused with the path and the allowed folders, in the action's error,
    the Repairs issue and its fix flow; the obtained certificate is kept."""
    ssl, victim = tmp_path / "ssl", tmp_path / "outside" / "victim.conf"
    live = ssl / "live"
    key = live / "privkey.pem"
    key.rename(live / "privkey.real.pem")
    key.symlink_to(Path("..") / ".." / "outside" / "victim.conf")
    before = _listing(tmp_path)
    freezer.tick(timedelta(hours=1))  # the next certificate is a newer one

    with pytest.raises(HomeAssistantError) as caught:
        await renew(hass, managed, force=True)
    assert caught.value.translation_key == "certificate_path_not_allowed"
    placeholders = caught.value.translation_placeholders or {}
    assert placeholders["path"] == str(key)
    assert str(ssl) in placeholders["allowed"]
    assert (
        _listing(tmp_path) == before
    )  # the link too: nothing written, nothing removed
    assert victim.read_bytes() == VICTIM
    state = hass.states.get(RESULT)
    assert state is not None
    assert state.state == "failed"

    issue = issue_registry.async_get_issue(DOMAIN, f"renewal_failed_{managed.entry_id}")
    assert issue is not None
    assert issue.translation_key == "certificate_path_not_allowed"
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["path"] == str(key)

    # The fix flow explains it (translated, placeholders filled) and retries.
    assert await async_setup_component(hass, "repairs", {})
    flows = repairs_flow_manager(hass)
    assert flows is not None
    flow: Any = await flows.async_init(DOMAIN, data={"issue_id": issue.issue_id})
    strings = await async_get_translations(hass, "en", "issues", [DOMAIN])
    text = strings[
        f"component.{DOMAIN}.issues.certificate_path_not_allowed.fix_flow.step."
        f"{flow['step_id']}.description"
    ].format(**flow["description_placeholders"])
    assert str(key) in text
    assert str(ssl) in text

    # The link points back inside: the retry writes the certificate kept
    # from the refused write, without ordering another.
    key.unlink()
    key.symlink_to("privkey.real.pem")
    done = await flows.async_configure(flow["flow_id"], {})
    assert done["type"] == "create_entry"
    assert fake_ca.orders == 2
    assert key.is_symlink()
    assert (live / "privkey.real.pem").read_bytes() != before[
        "ssl/live/privkey.real.pem"
    ]
    assert victim.read_bytes() == VICTIM
    assert (
        issue_registry.async_get_issue(DOMAIN, f"renewal_failed_{managed.entry_id}")
        is None
    )


async def test_a_certificate_folder_swapped_for_a_link_is_refused(
    hass: HomeAssistant,
    tmp_path: Path,
    managed: MockConfigEntry,
    fake_ca: FakeCa,
) -> None:
    """ssl/live now leads outside: nothing is written there, the old pair
    stays where it was."""
    live, outside = tmp_path / "ssl" / "live", tmp_path / "outside"
    live.rename(tmp_path / "ssl" / "live.old")
    live.symlink_to(outside)
    before = _listing(tmp_path)
    with pytest.raises(HomeAssistantError) as caught:
        await renew(hass, managed, force=True)
    assert caught.value.translation_key == "certificate_path_not_allowed"
    assert _listing(tmp_path) == before


async def test_a_key_link_onto_the_certificate_is_a_translated_failure(
    hass: HomeAssistant,
    tmp_path: Path,
    managed: MockConfigEntry,
    fake_ca: FakeCa,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """privkey.pem swapped for a link to fullchain.pem (a combined PEM some
    proxies want): the renewal fails with the reason the flow gives for the
    same paths, no traceback, nothing written."""
    live = tmp_path / "ssl" / "live"
    key = live / "privkey.pem"
    key.unlink()
    key.symlink_to("fullchain.pem")
    before = _listing(tmp_path)
    with pytest.raises(HomeAssistantError) as caught:
        await renew(hass, managed, force=True)
    detail = (caught.value.translation_placeholders or {}).get("detail", "")
    assert "unexpected" not in detail, detail
    assert "same file" in detail
    assert _listing(tmp_path) == before
    shown = [r for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]
    assert not shown, [r.getMessage() for r in shown]


async def test_two_entries_never_share_one_certificate_file(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    managed: MockConfigEntry,
    fake_ca: FakeCa,
) -> None:
    """A second DuckDNS name added with the suggested (same) paths: the
    options refuse them on the field; otherwise both entries would replace
    each other's certificate at every check, without end."""
    live = tmp_path / "ssl" / "live"
    other = mock_entry({}, **{CONF_DOMAINS: ["cabin.duckdns.org"]})
    await setup_integration(hass, other)
    result = await hass.config_entries.options.async_init(other.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "certificate"}
    )
    form = {
        **managed_options(live / "fullchain.pem", live / "privkey.pem"),
        CONF_ACME_DIRECTORY: "custom",
        CONF_ACME_DIRECTORY_URL: "https://ca.invalid/directory",
        CONF_KEY_TYPE: "ec-p256",
        CONF_VALIDATION_METHOD: VALIDATION_AUTOMATIC,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], form)
    assert result["type"] == "form"
    assert result["errors"] == {
        "certificate_path": "path_in_use",
        "private_key_path": "path_in_use",
    }
    assert result["description_placeholders"]["detail"] == "myhome.duckdns.org"
    assert fake_ca.orders == 1
