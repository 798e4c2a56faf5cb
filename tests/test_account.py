"""Accounts that heal: Pebble forgets or deactivates ours between two renewals.

A deactivated account is what a CA reset or another client's "unregister"
leaves behind; Pebble refuses it like Boulder does. Caddy's reset storage is
in tests/test_caddy.py.
"""

from __future__ import annotations

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

from custom_components.secure_remote_access.account import (
    account_store,
    async_acme_client,
)
from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.issues import (
    renewal_failed_issue_id,
    terms_issue_id,
)
from tests.common import REFUSED_NAME, pebble_options, renew, setup_duckdns_entry
from tests.fakes.acme_proxy import AcmeFront
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

NEW_TERMS = "https://ca.example/terms-2027.pdf"
FIX_URL = "/api/repairs/issues/fix"


async def _deactivate(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    """Deactivate the entry's ACME account at the CA (RFC 8555 section 7.3.6)."""
    managed = entry.runtime_data.managed
    assert managed is not None
    client = await async_acme_client(hass, managed.manager.settings)
    url = client.account_url
    assert url is not None
    await client._post(url, {"status": "deactivated"})
    return url


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
    old = await _deactivate(hass, entry)
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
        entry = await setup_duckdns_entry(
            hass,
            duckdns[1],
            pebble_options(pebble, ssl_dir, acme_directory=front.directory_url),
        )
        await renew(hass, entry)
        old = await _deactivate(hass, entry)

        def new_terms(directory: dict[str, Any]) -> dict[str, Any]:
            directory["meta"] = {
                **directory.get("meta", {}),
                "termsOfService": NEW_TERMS,
            }
            return directory

        front.edit_directory = new_terms
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
    )
    for _ in range(2):
        with pytest.raises(HomeAssistantError, match="rejectedIdentifier"):
            await renew(hass, entry, force=True)
    managed = entry.runtime_data.managed
    assert managed is not None
    assert managed.renewal.state.failures == 2
    old = await _deactivate(hass, entry)
    with pytest.raises(HomeAssistantError, match="rejectedIdentifier"):
        await renew(hass, entry, force=True)
    assert await _stored_url(hass, entry) not in (None, old)
    assert managed.renewal.state.failures == 1
