"""Accounts that heal: Pebble forgets or deactivates ours between two renewals.

A deactivated account is what a CA reset or another client's "unregister"
leaves behind; Pebble refuses it like Boulder does. Caddy's reset storage is
in tests/test_caddy.py.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.account import account_store
from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.issues import (
    renewal_failed_issue_id,
    terms_issue_id,
)
from tests.common import (
    REFUSED_NAME,
    deactivate_account,
    pebble_options,
    renew,
    setup_duckdns_entry,
)
from tests.fakes.acme_proxy import AcmeFront
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

NEW_TERMS = "https://ca.example/terms-2027.pdf"
FIX_URL = "/api/repairs/issues/fix"
LAST_RESULT = "sensor.myhome_duckdns_org_last_renewal_result"
ACCOUNT_NOT_FOUND = (
    400,
    {
        "type": "urn:ietf:params:acme:error:accountDoesNotExist",
        "detail": "Account not found",
    },
    {},
)


def _new_terms(directory: dict[str, Any]) -> dict[str, Any]:
    """The CA's directory with other terms of service."""
    directory["meta"] = {**directory.get("meta", {}), "termsOfService": NEW_TERMS}
    return directory


async def _entry_behind(
    hass: HomeAssistant,
    url: str,
    pebble: PebbleServer,
    front: AcmeFront,
    folder: Path,
    name: str = "myhome.duckdns.org",
) -> MockConfigEntry:
    """An entry getting its certificates through ``front``, with its first one."""
    folder.mkdir(exist_ok=True)
    entry = await setup_duckdns_entry(
        hass,
        url,
        pebble_options(pebble, folder, acme_directory=front.directory_url),
        domains=[name],
    )
    await renew(hass, entry)
    return entry


async def _two_entries(
    hass: HomeAssistant,
    url: str,
    pebble: PebbleServer,
    front: AcmeFront,
    folders: tuple[Path, Path],
) -> list[MockConfigEntry]:
    """Two entries on one CA (so on one account), each with its certificate."""
    home, cabin = folders
    return [
        await _entry_behind(hass, url, pebble, front, home),
        await _entry_behind(hass, url, pebble, front, cabin, "cabin.duckdns.org"),
    ]


async def _stored_url(hass: HomeAssistant, entry: MockConfigEntry) -> str | None:
    managed = entry.runtime_data.managed
    assert managed is not None
    _key, url = await account_store(hass).async_key(
        managed.manager.settings.directory_url
    )
    return url


async def test_deactivated_account_is_replaced_in_the_same_attempt(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Same terms: a new account is registered and the renewal succeeds."""
    entry = await setup_duckdns_entry(
        hass, duckdns[1], pebble_options(pebble, ssl_dir, email="me@example.com")
    )
    await renew(hass, entry)
    old = await deactivate_account(hass, entry)
    result = await renew(hass, entry, force=True)
    assert result["renewed"] is True
    new = await _stored_url(hass, entry)
    assert new not in (None, old)
    assert "no longer accepts the ACME account" in caplog.text
    assert old in await account_store(hass).async_account_urls()  # still ours
    assert not ir.async_get(hass).async_get_issue(
        DOMAIN, renewal_failed_issue_id(entry.entry_id)
    )
    assert entry.runtime_data.managed is not None
    assert entry.runtime_data.managed.renewal.state.failures == 0


async def _fix(client: Any, issue_id: str, data: dict[str, Any] | None = None) -> Any:
    response = await client.post(
        FIX_URL, json={"handler": DOMAIN, "issue_id": issue_id}
    )
    assert response.status == HTTPStatus.OK, await response.text()
    return await response.json()


async def _submit(client: Any, flow_id: str, data: dict[str, Any]) -> Any:
    response = await client.post(f"{FIX_URL}/{flow_id}", json=data)
    assert response.status == HTTPStatus.OK, await response.text()
    return await response.json()


async def test_changed_terms_wait_for_the_user(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """Changed terms: nothing is registered; a Repairs issue shows the new
    terms; accepting them registers the account and the back-off starts over."""
    async with AcmeFront(pebble) as front:
        entry = await _entry_behind(hass, duckdns[1], pebble, front, ssl_dir)
        old = await deactivate_account(hass, entry)
        front.edit_directory = _new_terms
        registrations = front.accounts
        with pytest.raises(HomeAssistantError) as caught:
            await renew(hass, entry, force=True)
        assert caught.value.translation_key == "account_terms_changed"
        assert NEW_TERMS in str(caught.value)
        assert front.accounts == registrations
        assert await _stored_url(hass, entry) == old
        registry = ir.async_get(hass)
        issue = registry.async_get_issue(DOMAIN, terms_issue_id(entry.entry_id))
        assert issue is not None
        assert issue.is_fixable
        assert (issue.translation_placeholders or {})["terms"] == NEW_TERMS
        assert not registry.async_get_issue(
            DOMAIN, renewal_failed_issue_id(entry.entry_id)
        )
        managed = entry.runtime_data.managed
        assert managed is not None
        assert managed.renewal.state.failures == 1

        assert await async_setup_component(hass, "repairs", {})
        client = await hass_client()
        flow = await _fix(client, terms_issue_id(entry.entry_id))
        assert flow["step_id"] == "confirm"
        assert NEW_TERMS in flow["description_placeholders"]["terms"]
        refused = await _submit(client, flow["flow_id"], {"accept_terms": False})
        assert refused["errors"] == {"accept_terms": "terms_required"}
        done = await _submit(client, refused["flow_id"], {"accept_terms": True})
        assert done["type"] == "create_entry"
        assert front.accounts == registrations + 1
        assert not registry.async_get_issue(DOMAIN, terms_issue_id(entry.entry_id))
        assert (
            await account_store(hass).async_accepted_terms(front.directory_url)
            == NEW_TERMS
        )
        assert await _stored_url(hass, entry) not in (None, old)
        # The back-off starts over: a check runs at once, not in 1 minute.
        assert managed.renewal.state.failures == 0
        await hass.async_block_till_done(wait_background_tasks=True)
        assert managed.renewal.state.last_result == "not_due"
        result = await renew(hass, entry, force=True)
        assert result["renewed"] is True


async def test_an_account_from_before_the_terms_were_stored_asks_first(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """An account made by an earlier version has no accepted terms on record:
    a lost one is not replaced without the user, and the issue does not claim
    that the terms changed."""
    async with AcmeFront(pebble) as front:
        entry = await _entry_behind(hass, duckdns[1], pebble, front, ssl_dir)
        store = account_store(hass)
        stored = (await store._load())[front.directory_url]
        assert stored.pop("terms")  # what an account of the earlier version holds
        await deactivate_account(hass, entry)
        registrations = front.accounts
        with pytest.raises(HomeAssistantError) as caught:
            await renew(hass, entry, force=True)
        assert caught.value.translation_key == "account_terms_unconfirmed"
        assert front.accounts == registrations
        registry = ir.async_get(hass)
        issue = registry.async_get_issue(DOMAIN, terms_issue_id(entry.entry_id))
        assert issue is not None
        assert issue.translation_key == "account_terms_unconfirmed"
        assert issue.is_fixable

        assert await async_setup_component(hass, "repairs", {})
        client = await hass_client()
        flow = await _fix(client, terms_issue_id(entry.entry_id))
        done = await _submit(client, flow["flow_id"], {"accept_terms": True})
        assert done["type"] == "create_entry"
        assert front.accounts == registrations + 1
        assert not registry.async_get_issue(DOMAIN, terms_issue_id(entry.entry_id))
        assert await store.async_accepted_terms(front.directory_url)


async def test_a_new_account_restarts_the_back_off(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Failures counted before a new account are not held against it: an
    attempt that registers one and then fails counts as the first failure."""
    entry = await setup_duckdns_entry(
        hass,
        duckdns[1],
        pebble_options(pebble, ssl_dir),
        domains=["myhome.duckdns.org", REFUSED_NAME],  # Pebble refuses the order
    )  # the first order, right after setup, fails
    with pytest.raises(HomeAssistantError, match="rejectedIdentifier"):
        await renew(hass, entry, force=True)
    managed = entry.runtime_data.managed
    assert managed is not None
    assert managed.renewal.state.failures == 2
    old = await deactivate_account(hass, entry)
    with pytest.raises(HomeAssistantError, match="rejectedIdentifier"):
        await renew(hass, entry, force=True)
    assert await _stored_url(hass, entry) not in (None, old)
    assert managed.renewal.state.failures == 1


async def test_a_ca_that_loses_every_new_account_is_not_flooded(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """A CA that answers accountDoesNotExist to every order, also for the
    account just registered (a reset CA behind a load balancer whose replicas
    do not share their database): one registration per attempt, and the
    failures count up so that the retries slow down (1, 10, 100 minutes...)
    instead of a new account every minute."""
    async with AcmeFront(pebble) as front:
        entry = await _entry_behind(hass, duckdns[1], pebble, front, ssl_dir)
        front.refuse = lambda _method, path: (
            ACCOUNT_NOT_FOUND if path == "/order-plz" else None
        )
        registrations = front.accounts
        for attempt in (1, 2, 3):
            with pytest.raises(HomeAssistantError, match="accountDoesNotExist"):
                await renew(hass, entry, force=True)
            assert front.accounts == registrations + attempt
            result = hass.states.get(LAST_RESULT)
            assert result is not None
            assert result.attributes["failures"] == attempt


async def test_two_entries_on_one_account_need_one_acceptance(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    tmp_path: Path,
    ssl_dir: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """Two entries share the CA's account; it is gone and the terms changed:
    both raise the issue, accepting the terms in one registers one account,
    and the other entry's issue goes with it; its fix flow, opened before,
    registers nothing more."""
    async with AcmeFront(pebble) as front:
        entries = await _two_entries(
            hass, duckdns[1], pebble, front, (ssl_dir, tmp_path / "cabin")
        )
        await deactivate_account(hass, entries[0])
        front.edit_directory = _new_terms
        registrations = front.accounts
        for entry in entries:
            with pytest.raises(HomeAssistantError, match="terms"):
                await renew(hass, entry, force=True)
        registry = ir.async_get(hass)
        issues = [terms_issue_id(entry.entry_id) for entry in entries]
        assert all(registry.async_get_issue(DOMAIN, issue) for issue in issues)

        assert await async_setup_component(hass, "repairs", {})
        client = await hass_client()
        cabin_flow = await _fix(client, issues[1])
        home_flow = await _fix(client, issues[0])
        done = await _submit(client, home_flow["flow_id"], {"accept_terms": True})
        assert done["type"] == "create_entry"
        assert front.accounts == registrations + 1
        await hass.async_block_till_done(wait_background_tasks=True)
        assert not registry.async_get_issue(DOMAIN, issues[1])
        cabin = entries[1].runtime_data.managed
        assert cabin is not None
        assert cabin.renewal.state.failures == 0

        late = await _submit(client, cabin_flow["flow_id"], {"accept_terms": True})
        assert late["type"] == "create_entry"
        assert front.accounts == registrations + 1
        for entry in entries:
            result = await renew(hass, entry, force=True)
            assert result["renewed"] is True
        assert front.accounts == registrations + 1


async def test_two_entries_healing_at_once_register_one_account(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    tmp_path: Path,
    ssl_dir: Path,
) -> None:
    """Two entries on one CA renew at the same moment after their shared
    account was deactivated: one new account, both certificates renewed."""
    async with AcmeFront(pebble) as front:
        entries = await _two_entries(
            hass, duckdns[1], pebble, front, (ssl_dir, tmp_path / "cabin")
        )
        await deactivate_account(hass, entries[0])
        registrations = front.accounts
        results = await asyncio.gather(
            *(renew(hass, entry, force=True) for entry in entries)
        )
        assert [result["renewed"] for result in results] == [True, True]
        assert front.accounts == registrations + 1
