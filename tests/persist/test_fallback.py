"""CAs whose dns-persist-01 differs from ours: the real Pebble behind a front.

The front (tests/fakes/acme_proxy.py) changes only what the client sees; the
validation is Pebble's own. A renamed issuer therefore makes Pebble refuse
every record we write: a CA that refuses every dns-persist-01 validation.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.account import account_store
from custom_components.secure_remote_access.const import (
    CONF_DUCKDNS_URL,
    EVENT_CERTIFICATE_RENEWED,
)
from tests.common import last_outcome, mock_entry, renew
from tests.fakes.acme_proxy import AcmeFront, persist_challenges
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

from .common import (
    ISSUER,
    SECOND_ISSUER,
    SetupPersistEntry,
    Waits,
    other_tool_writes,
    persist_options,
    renew_validating,
    renew_validating_counted,
    txt_writes,
)

PEBBLE_REFUSAL = "No valid TXT record found for DNS-PERSIST-01 challenge"
LAST_RESULT = "sensor.myhome_duckdns_org_last_renewal_result"


def _issuers(*names: str) -> Any:
    """An edit that makes the CA list ``names`` as its issuers."""

    def edit(challenge: dict[str, Any]) -> dict[str, Any]:
        return {**challenge, "issuer-domain-names": list(names)}

    return persist_challenges(edit)


def _persist_values(duck: FakeDuckDns, issuer: str) -> list[str]:
    """The persistent records written to DuckDNS that name ``issuer``."""
    return [
        query["txt"]
        for query in txt_writes(duck)
        if query.get("txt", "").startswith(f"{issuer};")
    ]


async def test_ca_refusing_every_persist_validation(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    hass_client: ClientSessionGenerator,
    ssl_dir: Path,
) -> None:
    """Refused once: dns-01 in the same attempt (one extra order), said
    everywhere, and not tried again, across a restart, until the CA changes."""
    duck, _url = fake
    events: list[Event] = []
    hass.bus.async_listen(EVENT_CERTIFICATE_RENEWED, events.append)
    async with AcmeFront(pebble, edit_challenge=_issuers("renamed.example")) as front:
        # The first certificate is ordered right after setup.
        entry = await persist_entry(directory=front.directory_url)
        first = last_outcome(entry)
        assert first["renewed"] is True
        assert (ssl_dir / "fullchain.pem").exists()
        assert first["validation_method"] == "dns-01"
        assert first["validation_note"] == "persist_refused"
        assert first["validation_detail"] == (
            f"dns-persist-01 refused by the CA: {PEBBLE_REFUSAL} (unauthorized); "
            "used dns-01"
        )
        assert front.orders == 2  # the refused one and one more, never more
        assert len(_persist_values(duck, "renamed.example")) == 1
        assert duck.records["myhome"].txt == ""  # the dns-01 value was cleared
        await hass.async_block_till_done()
        assert events[-1].data["validation_detail"] == first["validation_detail"]
        result = hass.states.get(LAST_RESULT)
        assert result is not None
        assert result.attributes["validation_note"] == "persist_refused"
        assert result.attributes["validation_detail"] == first["validation_detail"]
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        refusal = diagnostics["renewal"]["persist_refusal"]
        assert refusal["problem_type"] == "unauthorized"
        assert refusal["detail"] == PEBBLE_REFUSAL
        assert diagnostics["renewal"]["persistent_records"] == []

        # The next renewal goes to dns-01 at once; so after a restart.
        for restart in (False, True):
            if restart:
                await hass.config_entries.async_reload(entry.entry_id)
                await hass.async_block_till_done()
            orders = front.orders
            again, renewals = await renew_validating_counted(hass, entry)
            assert again["validation_method"] == "dns-01"
            assert again["validation_note"] == "persist_refused_earlier"
            assert again["validation_detail"].startswith(
                f"dns-persist-01 refused by the CA on {refusal['refused_at'][:10]}: "
                f"{PEBBLE_REFUSAL} (unauthorized); used dns-01"
            )
            assert front.orders - orders == renewals  # one dns-01 order each
            assert len(_persist_values(duck, "renamed.example")) == 1

        # The CA changes its challenge: dns-persist-01 is worth a new try.
        front.edit_challenge = _issuers("renamed-again.example")
        orders = front.orders
        # Not renew_validating: Pebble may reuse a valid authorization for the
        # dns-01 order after the refusal, and a repeat would find it remembered.
        changed = await renew(hass, entry, force=True)
        assert changed["validation_note"] == "persist_refused"
        assert len(_persist_values(duck, "renamed-again.example")) == 1
        assert front.orders - orders == 2


BOULDER_SERVFAIL = (
    "Retrieving TXT records for DNS-PERSIST-01 challenge: DNS problem: SERVFAIL "
    "looking up TXT for _validation-persist.myhome.duckdns.org - the domain's "
    "nameservers may be malfunctioning"
)


def _lookup_failed(challenge: dict[str, Any]) -> dict[str, Any]:
    """Boulder's answer when DuckDNS's name servers fail it: type ``dns``."""
    if "error" not in challenge:
        return challenge
    error = {"type": "urn:ietf:params:acme:error:dns", "detail": BOULDER_SERVFAIL}
    return {**challenge, "error": {**challenge["error"], **error}}


async def test_a_failed_lookup_is_not_a_refusal(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
) -> None:
    """The CA could not look the record up (DuckDNS's name servers failing
    for a moment, a ``dns`` problem): dns-01 answers this attempt, and the
    next one tries dns-persist-01 again instead of waiting 30 days."""
    duck, _url = fake
    renamed = _issuers("renamed.example")  # Pebble refuses the record we write

    def servfail(challenge: dict[str, Any]) -> dict[str, Any] | None:
        edited = renamed(challenge)
        if edited is None or edited.get("type") != "dns-persist-01":
            return edited
        return _lookup_failed(edited)

    async with AcmeFront(pebble, edit_challenge=servfail) as front:
        entry = await persist_entry(directory=front.directory_url)
        first = last_outcome(entry)  # ordered right after setup
        assert first["renewed"] is True
        assert first["validation_method"] == "dns-01"
        assert first["validation_note"] == "persist_lookup_failed"
        assert BOULDER_SERVFAIL in first["validation_detail"]
        assert "(dns)" in first["validation_detail"]
        assert front.orders == 2
        result = hass.states.get(LAST_RESULT)
        assert result is not None
        assert result.attributes["validation_note"] == "persist_lookup_failed"

        # Now the CA reads the record and refuses it: that is remembered.
        front.edit_challenge = renamed
        orders = front.orders
        again, renewals = await renew_validating_counted(hass, entry)
        assert again["validation_note"] == "persist_refused"
        # The refused dns-persist-01 order, then one dns-01 order per renewal.
        assert front.orders - orders == 1 + renewals
        assert len(_persist_values(duck, "renamed.example")) == 2


async def test_rate_limit_on_the_fallback_order(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    pebble: PebbleServer,
    hass_client: ClientSessionGenerator,
) -> None:
    """The CA refuses the record, then rate-limits the extra order: the
    attempt fails with the CA's words and waits for its Retry-After; the
    refusal is kept, so the attempt after that orders once, with dns-01."""
    limited = (
        429,
        {
            "type": "urn:ietf:params:acme:error:rateLimited",
            "detail": "too many new orders recently",
        },
        {"Retry-After": "3600"},
    )
    async with AcmeFront(pebble, edit_challenge=_issuers("renamed.example")) as front:
        front.refuse = lambda _method, path: (
            limited if path == "/order-plz" and front.orders >= 1 else None
        )
        entry = await persist_entry(directory=front.directory_url)
        managed = entry.runtime_data.managed
        assert managed is not None
        # The first certificate, ordered right after setup, failed so.
        assert "rateLimited" in str(managed.renewal.state.last_error)
        assert front.orders == 1
        assert front.requests.count(("POST", "/order-plz", 429)) == 1
        retry_after = managed.renewal.state.retry_after
        assert retry_after is not None
        assert retry_after - dt_util.utcnow() > timedelta(minutes=59)
        diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
        assert diagnostics["renewal"]["persist_refusal"]["detail"] == PEBBLE_REFUSAL
        with pytest.raises(HomeAssistantError):  # not before the CA's time
            await renew(hass, entry, force=True)
        assert front.orders == 1


async def test_restart_in_the_middle_of_a_fallback(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Unloaded while answering with dns-01 after a refusal: the entry set up
    again orders once, with dns-01 at once, and gets its certificate."""
    duck, url = fake
    async with AcmeFront(pebble, edit_challenge=_issuers("renamed.example")) as front:
        hanging = asyncio.Event()

        def hang_the_dns01_value(query: dict[str, str]) -> None:
            if query.get("txt", "").startswith("renamed.example;"):
                duck.txt_outage = "hang"  # the next value set: the dns-01 one

        duck.on_request = hang_the_dns01_value
        duck.on_hang = hanging.set
        options = persist_options(pebble, ssl_dir, acme_directory=front.directory_url)
        entry = mock_entry(options, **{CONF_DUCKDNS_URL: url})
        entry.add_to_hass(hass)
        # The first certificate is ordered right after setup: it hangs there.
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hanging.wait()
        assert front.orders == 2
        assert await hass.config_entries.async_unload(entry.entry_id)
        duck.on_request = None
        duck.release_hanging()
        assert not (ssl_dir / "fullchain.pem").exists()

        orders = front.orders
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        result = last_outcome(entry)
        assert result["renewed"] is True
        assert result["validation_note"] == "persist_refused_earlier"
        assert front.orders - orders == 1
        assert len(_persist_values(duck, "renamed.example")) == 1
        assert (ssl_dir / "fullchain.pem").exists()


async def test_reordered_issuers_need_no_rewrite_even_during_an_outage(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
) -> None:
    """A record naming any listed issuer is current: the CA reordering its two
    names changes nothing, so DuckDNS being down does not matter."""
    duck, _url = fake
    async with AcmeFront(pebble) as front:
        entry = await persist_entry(directory=front.directory_url)
        first = last_outcome(entry)
        assert first["validation_note"] == "record_set"
        assert duck.records["myhome"].txt.startswith(f"{ISSUER};")
        front.edit_challenge = _issuers(SECOND_ISSUER, ISSUER)
        duck.outage = "500"
        writes = len(txt_writes(duck))
        with Waits() as waits:
            again = await renew_validating(hass, entry)
        assert again["renewed"] is True
        assert again["validation_method"] == "dns-persist-01"
        assert again["validation_note"] == "record_reused"
        assert len(txt_writes(duck)) == writes
        assert waits.count == 0


async def test_draft_02_field_spelling(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
) -> None:
    """The issuer list as ``issuerDomainNames`` (draft-02) works the same."""
    duck, _url = fake

    def respell(challenge: dict[str, Any]) -> dict[str, Any]:
        names = challenge.pop("issuer-domain-names")
        return {**challenge, "issuerDomainNames": names}

    async with AcmeFront(pebble, edit_challenge=persist_challenges(respell)) as front:
        entry = await persist_entry(directory=front.directory_url)
        result = last_outcome(entry)
    assert result["validation_method"] == "dns-persist-01"
    assert result["validation_note"] == "record_set"
    assert duck.records["myhome"].txt.startswith(f"{ISSUER};")


async def test_hashed_account_form_is_never_written(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
) -> None:
    """A CA asking for draft-02's hashed account URI gets dns-01, and the
    result says why; no persistent record is written."""
    duck, _url = fake

    def draft_02(directory: dict[str, Any]) -> dict[str, Any]:
        directory["meta"] = {
            **directory.get("meta", {}),
            "issuerDomainNames": [ISSUER],
            "accountHashPrefix": "https://ca.example/account-hash/",
        }
        return directory

    async with AcmeFront(pebble, edit_directory=draft_02) as front:
        entry = await persist_entry(directory=front.directory_url)
        result = last_outcome(entry)
        assert front.orders == 1
    assert result["renewed"] is True
    assert result["validation_method"] == "dns-01"
    assert result["validation_note"] == "record_form_unsupported"
    assert "hashed account URI" in result["validation_detail"]
    assert _persist_values(duck, ISSUER) == []


async def test_record_pasted_with_quotes_is_rewritten(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
) -> None:
    """The user pasted our record zone-file style: ours, so it is written
    again in the form the CA reads, instead of a conflict with "another account"."""
    duck, url = fake
    entry = await persist_entry()
    await renew(hass, entry)
    (account,) = await account_store(hass).async_account_urls()
    await other_tool_writes(duck, url, f'"{ISSUER}; accounturi={account}"')
    result = await renew_validating(hass, entry)
    assert result["renewed"] is True
    assert result["validation_method"] == "dns-persist-01"
    assert result["validation_note"] == "outdated_record_replaced"
    assert duck.records["myhome"].txt == f"{ISSUER}; accounturi={account}"
