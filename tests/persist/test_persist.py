"""dns-persist-01 end to end: Pebble validates against the one DuckDNS TXT value.

A Pebble of this package's own that never reuses authorizations, so that
every order really validates; the DuckDNS stand-in counts every TXT call.
"""

from __future__ import annotations

import logging
from pathlib import Path

from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.account import (
    account_store,
    async_register_account,
)
from custom_components.secure_remote_access.certificate_settings import (
    CertificateSettings,
)
from custom_components.secure_remote_access.const import (
    CONF_EXTRA_NAMES,
    CONF_VALIDATION_METHOD,
    CONF_WILDCARD,
    DOMAIN,
    EVENT_CERTIFICATE_RENEWED,
    VALIDATION_DNS01,
)
from custom_components.secure_remote_access.issues import (
    delegation_issue_id,
    renewal_failed_issue_id,
)
from tests.common import dns_names, last_outcome, read_leaf, renew
from tests.fakes.acme_proxy import ChallengeFilterProxy
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

from .common import (
    ISSUER,
    OWN,
    OWN_DNS01_RECORD,
    OWN_RECORD,
    SetupPersistEntry,
    Waits,
    other_tool_writes,
    persist_options,
    renew_validating,
    txt_writes,
)


async def test_set_once_then_renewals_need_no_dns_write(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    hass_client: ClientSessionGenerator,
    fake: tuple[FakeDuckDns, str],
) -> None:
    """The first order writes the record once; later ones make no DuckDNS call."""
    duck, url = fake
    events: list[Event] = []
    hass.bus.async_listen(EVENT_CERTIFICATE_RENEWED, events.append)
    with Waits() as waits:
        entry = await persist_entry()  # the first order runs right after setup
    first = last_outcome(entry)
    assert first["renewed"] is True
    assert first["validation_method"] == "dns-persist-01"
    assert first["validation_note"] == "record_set"
    account = await account_store(hass).async_account_urls()
    (account_url,) = account
    assert duck.records["myhome"].txt == f"{ISSUER}; accounturi={account_url}"
    assert len(txt_writes(duck)) == 1
    assert waits.count == 1
    await hass.async_block_till_done()
    assert events[0].data["validation_method"] == "dns-persist-01"
    result = hass.states.get("sensor.myhome_duckdns_org_last_renewal_result")
    assert result is not None
    assert result.attributes["validation_method"] == "dns-persist-01"
    assert result.attributes["validation_note"] == "record_set"

    for _ in range(2):
        writes = len(txt_writes(duck))
        with Waits() as waits:
            again = await renew_validating(hass, entry)
        assert again["renewed"] is True
        assert again["serial"] != first["serial"]
        assert again["validation_method"] == "dns-persist-01"
        assert again["validation_note"] == "record_reused"
        assert len(txt_writes(duck)) == writes  # no DuckDNS TXT call
        assert waits.count == 0  # no propagation wait
    # The record stays: it is what the next renewal uses.
    assert duck.records["myhome"].txt.startswith(ISSUER)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["renewal"]["validation_method"] == "automatic"
    assert diagnostics["renewal"]["persistent_records"] == ["myhome.duckdns.org"]
    assert (
        diagnostics["renewal"]["state"]["last_outcome"]["validation_method"]
        == "dns-persist-01"
    )


async def test_wildcard_and_base_name_through_policy_wildcard(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    ssl_dir: Path,
) -> None:
    """One record with policy=wildcard covers both names of each DuckDNS name."""
    duck, url = fake
    entry = await persist_entry(
        domains=["myhome.duckdns.org", "cabin.duckdns.org"], **{CONF_WILDCARD: True}
    )
    result = last_outcome(entry)
    assert result["validation_method"] == "dns-persist-01"
    assert dns_names(read_leaf(ssl_dir / "fullchain.pem")) == {
        "myhome.duckdns.org",
        "*.myhome.duckdns.org",
        "cabin.duckdns.org",
        "*.cabin.duckdns.org",
    }
    for name in ("myhome", "cabin"):
        assert duck.records[name].txt.endswith("; policy=wildcard")
    # One write per DuckDNS name, not per certificate name.
    assert sorted(query["domains"] for query in txt_writes(duck)) == [
        "cabin",
        "myhome",
    ]


async def test_delegated_own_name(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
) -> None:
    """_validation-persist.<own name> CNAME to the DuckDNS name is all it needs."""
    duck, url = fake
    await pebble.set_cname(OWN_RECORD, "_validation-persist.myhome.duckdns.org")
    entry = await persist_entry(**{CONF_EXTRA_NAMES: [OWN]})
    result = last_outcome(entry)
    assert result["renewed"] is True
    assert result["validation_method"] == "dns-persist-01"
    assert set(result["names"]) == {"myhome.duckdns.org", OWN}
    assert {query["domains"] for query in txt_writes(duck)} == {"myhome"}
    # Without an _acme-challenge delegation there is no broken-delegation issue.
    assert not ir.async_get(hass).async_get_issue(
        DOMAIN, delegation_issue_id(entry.entry_id)
    )


async def test_falls_back_to_dns01_when_not_offered(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
) -> None:
    """A CA without dns-persist-01: dns-01, its value cleared after, said so."""
    duck, url = fake
    proxy = ChallengeFilterProxy(pebble)
    await proxy.start()
    try:
        entry = await persist_entry(directory=proxy.directory_url)
        result = last_outcome(entry)
    finally:
        await proxy.stop()
    assert result["renewed"] is True
    assert result["validation_method"] == "dns-01"
    assert result["validation_note"] == "not_offered"
    assert duck.records["myhome"].txt == ""  # the dns-01 value was cleared
    assert (
        await entry.runtime_data.managed.manager.persist_records.async_records() == {}
    )  # type: ignore[union-attr]


async def test_record_of_another_account_is_left_alone(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    ssl_dir: Path,
) -> None:
    """Someone else's client holds the record: nothing is written, the user is told."""
    duck, url = fake
    foreign = f"{ISSUER}; accounturi=https://127.0.0.1:1/my-account/999"
    await other_tool_writes(duck, url, foreign)
    entry = await persist_entry()
    with pytest.raises(HomeAssistantError) as caught:
        await renew(hass, entry)
    assert caught.value.translation_key == "persist_record_conflict"
    assert "never overwrites it" in str(caught.value)  # the translated message
    assert "another ACME account" in str(caught.value)
    assert "https://127.0.0.1:1/my-account/999" in str(caught.value)
    assert duck.records["myhome"].txt == foreign
    assert len(txt_writes(duck)) == 1  # only the other tool's
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, renewal_failed_issue_id(entry.entry_id)
    )
    assert issue is not None
    assert "dns-01 only" in (issue.translation_placeholders or {})["detail"]
    assert not (ssl_dir / "fullchain.pem").exists()


@pytest.mark.parametrize(
    ("record", "note"),
    [
        # Our own account, but the record has expired.
        (
            "{issuer}; accounturi={account}; persistUntil=1000000000",
            "expired_record_replaced",
        ),
        # Our account at an earlier CA (the entry changed CA or account).
        (
            "old-ca.example; accounturi=https://old-ca.example/acct/7",
            "outdated_record_replaced",
        ),
    ],
)
async def test_own_outdated_record_is_rewritten(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    record: str,
    note: str,
) -> None:
    """A record naming one of our accounts is ours to rewrite."""
    duck, url = fake
    store = account_store(hass)
    await store.async_key("https://old-ca.example/dir")
    await store.async_set_url(
        "https://old-ca.example/dir", "https://old-ca.example/acct/7"
    )
    settings = CertificateSettings.parse(
        ["myhome.duckdns.org"], persist_options(pebble, ssl_dir)
    )
    client = await async_register_account(hass, settings)
    await other_tool_writes(
        duck, url, record.format(issuer=ISSUER, account=client.account_url)
    )
    entry = await persist_entry()  # the first order runs right after setup
    result = last_outcome(entry)
    assert result["validation_method"] == "dns-persist-01"
    assert result["validation_note"] == note
    assert duck.records["myhome"].txt == f"{ISSUER}; accounturi={client.account_url}"


async def test_switch_to_dns01_only_clears_the_record(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
) -> None:
    """Choosing dns-01 only clears the record the entry set, then uses dns-01."""
    duck, url = fake
    entry = await persist_entry()
    await renew(hass, entry)
    assert duck.records["myhome"].txt.startswith(ISSUER)
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_VALIDATION_METHOD: VALIDATION_DNS01}
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert duck.records["myhome"].txt == ""
    result = await renew_validating(hass, entry)
    assert result["validation_method"] == "dns-01"
    assert result["validation_note"] is None


async def test_removal_clears_the_record_but_not_another_value(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
) -> None:
    """Deleting the entry clears its record; a value another tool wrote since stays."""
    duck, url = fake
    entry = await persist_entry(domains=["myhome.duckdns.org", "cabin.duckdns.org"])
    await renew(hass, entry)
    assert duck.records["cabin"].txt.startswith(ISSUER)
    await other_tool_writes(duck, url, "another-tool-value")
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert duck.records["cabin"].txt == ""
    assert duck.records["myhome"].txt == "another-tool-value"


async def test_duckdns_outage_while_setting_the_record(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    ssl_dir: Path,
) -> None:
    """DuckDNS answering HTML: a clear failure, no certificate; the retry sets it."""
    duck, url = fake
    duck.txt_outage = "html"
    entry = await persist_entry()  # the first order runs right after setup
    assert entry.runtime_data.managed.renewal.state.failures == 1  # type: ignore[union-attr]
    assert duck.records["myhome"].txt == ""
    assert not (ssl_dir / "fullchain.pem").exists()
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, renewal_failed_issue_id(entry.entry_id)
    )
    assert issue is not None
    result = await renew(hass, entry, force=True)
    assert result["validation_method"] == "dns-persist-01"
    assert result["validation_note"] == "record_set"
    assert not ir.async_get(hass).async_get_issue(
        DOMAIN, renewal_failed_issue_id(entry.entry_id)
    )


async def test_persist_only_delegation_with_a_ca_without_it(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Only _validation-persist delegates and the CA offers only dns-01: the record to create."""
    await pebble.set_cname(OWN_RECORD, "_validation-persist.myhome.duckdns.org")
    proxy = ChallengeFilterProxy(pebble)
    await proxy.start()
    try:
        entry = await persist_entry(
            directory=proxy.directory_url, **{CONF_EXTRA_NAMES: [OWN]}
        )
        with pytest.raises(HomeAssistantError, match=f"_acme-challenge.{OWN}"):
            await renew(hass, entry)
    finally:
        await proxy.stop()
    assert ir.async_get(hass).async_get_issue(
        DOMAIN, delegation_issue_id(entry.entry_id)
    )
    assert not (ssl_dir / "fullchain.pem").exists()


async def test_removal_while_duckdns_is_down(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The entry goes anyway; the log says which record to clear by hand."""
    duck, url = fake
    entry = await persist_entry()
    await renew(hass, entry)
    duck.outage = "500"
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert "Could not clear the persistent validation record of myhome.duckdns.org" in (
        caplog.text
    )
    assert duck.records["myhome"].txt.startswith(ISSUER)
    # Nobody is left to clear it: the user is told which record to clear.
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, "persist_record_left_myhome.duckdns.org"
    )
    assert issue is not None
    assert issue.translation_placeholders == {"domain": "myhome.duckdns.org"}


async def test_own_name_with_only_the_dns01_delegation(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
) -> None:
    """Only _acme-challenge delegates: the order uses dns-01 and says why."""
    duck, url = fake
    await pebble.set_cname(OWN_DNS01_RECORD, "_acme-challenge.myhome.duckdns.org")
    entry = await persist_entry(**{CONF_EXTRA_NAMES: [OWN]})
    result = last_outcome(entry)
    assert result["renewed"] is True
    assert result["validation_method"] == "dns-01"
    assert result["validation_note"] == "not_delegated"
    assert duck.records["myhome"].txt == ""


async def test_dns01_fallback_forgets_the_record_it_wiped(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
) -> None:
    """A dns-01 order overwrites and clears the one TXT value: no longer ours."""
    duck, url = fake
    entry = await persist_entry()
    await renew(hass, entry)
    records = entry.runtime_data.managed.manager.persist_records  # type: ignore[union-attr]
    assert await records.async_records() == {
        "myhome.duckdns.org": duck.records["myhome"].txt
    }
    proxy = ChallengeFilterProxy(pebble)
    await proxy.start()
    try:
        hass.config_entries.async_update_entry(
            entry, options={**entry.options, "acme_directory": proxy.directory_url}
        )
        await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        result = await renew(hass, entry, force=True)
    finally:
        await proxy.stop()
    assert result["validation_method"] == "dns-01"
    assert duck.records["myhome"].txt == ""
    records = entry.runtime_data.managed.manager.persist_records  # type: ignore[union-attr]
    assert await records.async_records() == {}


async def test_duckdns_failing_to_clear_warns_once_per_outage(
    hass: HomeAssistant,
    persist_entry: SetupPersistEntry,
    fake: tuple[FakeDuckDns, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DuckDNS refusing to clear the dns-01 value: one warning line per outage,
    the traceback only at debug level; the renewals themselves work."""
    duck, _url = fake
    entry = await persist_entry(**{CONF_VALIDATION_METHOD: VALIDATION_DNS01})

    def clear_warnings() -> list[logging.LogRecord]:
        return [
            record
            for record in caplog.records
            if record.levelno >= logging.WARNING
            and "Could not clear the TXT record" in record.getMessage()
        ]

    duck.clear_outage = "html"
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            assert (await renew_validating(hass, entry))["renewed"] is True
        (warning,) = clear_warnings()
        assert warning.levelno == logging.WARNING
        assert warning.exc_info is None
        assert "myhome.duckdns.org" in warning.getMessage()
        assert any(
            record.exc_info
            for record in caplog.records
            if record.levelno == logging.DEBUG
            and "Clearing the TXT record" in record.getMessage()
        )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        duck.clear_outage = None
        await renew_validating(hass, entry)  # the outage is over
        duck.clear_outage = "html"
        await renew_validating(hass, entry)  # a new outage: a new warning
    assert len(clear_warnings()) == 2
