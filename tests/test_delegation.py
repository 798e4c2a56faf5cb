"""Certificates for the user's own domain through DuckDNS, by CNAME delegation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant import config_entries
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.secure_remote_access.const import (
    CONF_DUCKDNS_URL,
    CONF_EXTRA_NAMES,
    CONF_WILDCARD,
    DOMAIN,
    SECTION_TESTING,
)
from custom_components.secure_remote_access.issues import (
    delegation_issue_id,
    renewal_failed_issue_id,
)
from custom_components.secure_remote_access.protocol.acme import (
    AcmeClient,
    AcmeConnectionError,
)
from custom_components.secure_remote_access.status import Problem
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

from . import test_certificate as base
from .common import TOKEN, suggested

# The DuckDNS fake and the certificate directory of the certificate tests.
duckdns = base.duckdns
ssl_dir = base.ssl_dir
_entry, _leaf, _names, _options, _renew = (
    base._entry,
    base._leaf,
    base._names,
    base._options,
    base._renew,
)

OWN = "home.dlg-e2e.example.com"
RECORD = f"_acme-challenge.{OWN}"
TARGET = "_acme-challenge.myhome.duckdns.org"


@pytest.fixture
async def delegated(pebble: PebbleServer) -> AsyncIterator[None]:
    """``_acme-challenge.home.…`` delegates to myhome.duckdns.org; removed after."""
    await pebble.set_cname(RECORD, TARGET)
    yield
    await pebble.clear_cname(RECORD)


def _extra(pebble: PebbleServer, ssl_dir: Path, **extra: Any) -> dict[str, Any]:
    return _options(pebble, ssl_dir, **{CONF_EXTRA_NAMES: [OWN, f"*.{OWN}"], **extra})


async def test_one_certificate_through_one_txt_value(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    delegated: None,
) -> None:
    """DuckDNS name, own name and its wildcard: three challenges, one TXT value."""
    fake, url = duckdns
    entry = await _entry(hass, url, _extra(pebble, ssl_dir))
    result = await _renew(hass, entry)
    assert result["renewed"] is True
    assert set(result["names"]) == {"myhome.duckdns.org", OWN, f"*.{OWN}"}
    assert _names(_leaf(ssl_dir / "fullchain.pem")) == {
        "myhome.duckdns.org",
        OWN,
        f"*.{OWN}",
    }
    # Every TXT update went to the one DuckDNS name, and was cleared after.
    txt_requests = [q for q in fake.requests if "txt" in q]
    assert {q["domains"] for q in txt_requests} == {"myhome"}
    assert fake.records["myhome"].txt == ""
    # The managed certificate covers every name: no name-mismatch issue.
    await hass.async_block_till_done()
    monitor = entry.runtime_data.certificates
    assert monitor is not None
    await monitor.async_refresh()
    status = monitor.status("managed")
    assert status is not None
    assert status.source.expected_names == ("myhome.duckdns.org", OWN, f"*.{OWN}")
    assert not status.missing_names
    assert Problem.NAME_MISMATCH not in status.problems
    assert not [
        issue_id
        for domain, issue_id in ir.async_get(hass).issues
        if domain == DOMAIN and issue_id.startswith("certificate_name_mismatch")
    ]


@pytest.mark.parametrize("cname", [None, "_acme-challenge.cabin.duckdns.org"])
async def test_config_flow_form_error_names_the_record(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    cname: str | None,
) -> None:
    """A missing CNAME, or one to a DuckDNS name not in the entry: form error."""
    _, url = duckdns
    record = f"_acme-challenge.flow{'x' if cname else ''}.dlg-e2e.example.com"
    own = record.removeprefix("_acme-challenge.")
    if cname:
        await pebble.set_cname(record, cname)
    try:
        result = await hass.config_entries.flow.async_init(
            DOMAIN,
            context={"source": config_entries.SOURCE_USER},
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {
                "domain": "myhome",
                CONF_TOKEN: TOKEN,
                SECTION_TESTING: {CONF_DUCKDNS_URL: url},
            },
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"next_step_id": "certificate"}
        )
        options = base._form(pebble, ssl_dir)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {**options, CONF_EXTRA_NAMES: f"*.{own}\n{own}"}
        )
        assert result["errors"] == {CONF_EXTRA_NAMES: "cname_missing"}
        assert result["description_placeholders"]["records"] == (
            f"{record} CNAME {TARGET}"
        )
        # The text the user typed stays in the form.
        await pebble.set_cname(record, TARGET)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {**options, CONF_EXTRA_NAMES: f"*.{own}, {own.upper()}"}
        )
        assert result["step_id"] == "terms"
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"accept_terms": True}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["options"][CONF_EXTRA_NAMES] == [f"*.{own}", own]
    finally:
        await pebble.clear_cname(record)


@pytest.mark.parametrize(
    ("text", "error", "detail"),
    [
        ("home.example.com, bad_name.example.com", "invalid_extra_name", "bad_name"),
        ("cabin.duckdns.org", "extra_name_duckdns", "cabin.duckdns.org"),
        (
            ",".join(f"h{i}.example.com" for i in range(99)),
            "too_many_names",
            "100",
        ),
    ],
)
async def test_options_flow_rejects_bad_names(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    text: str,
    error: str,
    detail: str,
) -> None:
    """Names are checked before any DNS query or CA request."""
    _, url = duckdns
    entry = await _entry(hass, url, {})
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "certificate"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            **base._form(pebble, ssl_dir, **{CONF_WILDCARD: True}),
            CONF_EXTRA_NAMES: text,
        },
    )
    assert result["errors"] == {CONF_EXTRA_NAMES: error}
    assert detail in result["description_placeholders"]["detail"]


async def test_options_flow_wrong_cname_then_fixed(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """The options flow shows the record; stored names come back as text."""
    _, url = duckdns
    own = "opts.dlg-e2e.example.com"
    record = f"_acme-challenge.{own}"
    await pebble.set_cname(record, "_acme-challenge.cabin.duckdns.org")
    try:
        entry = await _entry(hass, url, {"update_interval": 7})
        result = await hass.config_entries.options.async_init(entry.entry_id)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"next_step_id": "certificate"}
        )
        options = base._form(pebble, ssl_dir)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {**options, CONF_EXTRA_NAMES: own}
        )
        assert result["errors"] == {CONF_EXTRA_NAMES: "cname_missing"}
        assert result["description_placeholders"]["records"] == (
            f"{record} CNAME {TARGET}"
        )
        await pebble.set_cname(record, "myhome.duckdns.org")
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {**options, CONF_EXTRA_NAMES: own}
        )
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"accept_terms": True}
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        assert entry.options[CONF_EXTRA_NAMES] == [own]

        result = await hass.config_entries.options.async_init(entry.entry_id)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"next_step_id": "certificate"}
        )
        schema = result["data_schema"]
        assert schema is not None
        assert suggested(schema.schema)[CONF_EXTRA_NAMES] == own
    finally:
        await pebble.clear_cname(record)


async def test_broken_delegation_on_renewal_keeps_certificate(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    delegated: None,
) -> None:
    """Renewal checks the CNAME first: repair issue, files untouched, then cleared."""
    _, url = duckdns
    entry = await _entry(hass, url, _extra(pebble, ssl_dir))
    await _renew(hass, entry)
    before = (
        (ssl_dir / "fullchain.pem").read_bytes(),
        (ssl_dir / "privkey.pem").read_bytes(),
    )
    issue_id = delegation_issue_id(entry.entry_id)
    registry = ir.async_get(hass)

    await pebble.clear_cname(RECORD)
    with pytest.raises(HomeAssistantError) as err:
        await entry.runtime_data.managed.renewal.async_run(force=True)
    assert err.value.translation_key == "cname_delegation_broken"
    assert err.value.translation_placeholders["record"] == RECORD
    issue = registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders == {
        "record": RECORD,
        "target": TARGET,
        "records": f"{RECORD} CNAME {TARGET}",
    }
    assert (
        registry.async_get_issue(DOMAIN, renewal_failed_issue_id(entry.entry_id))
        is None
    )
    after = (
        (ssl_dir / "fullchain.pem").read_bytes(),
        (ssl_dir / "privkey.pem").read_bytes(),
    )
    assert after == before
    assert entry.runtime_data.managed.renewal.state.failures == 1

    # A CNAME to a DuckDNS name of another account is just as broken.
    await pebble.set_cname(RECORD, "_acme-challenge.cabin.duckdns.org")
    with pytest.raises(HomeAssistantError):
        await _renew(hass, entry, force=True)
    assert registry.async_get_issue(DOMAIN, issue_id) is not None

    # After a failure an unforced run is the retry: it fails again, the issue stays.
    with pytest.raises(HomeAssistantError):
        await _renew(hass, entry)
    assert registry.async_get_issue(DOMAIN, issue_id) is not None
    assert entry.runtime_data.managed.renewal.state.failures == 3

    await pebble.set_cname(RECORD, TARGET)
    result = await _renew(hass, entry)
    assert (result["renewed"], result["reason"]) == (True, "retry")
    assert registry.async_get_issue(DOMAIN, issue_id) is None

    # With nothing failing, a check that is not due still looks at the record.
    await pebble.clear_cname(RECORD)
    result = await _renew(hass, entry)
    assert result["renewed"] is False
    assert registry.async_get_issue(DOMAIN, issue_id) is not None
    assert entry.runtime_data.managed.renewal.state.failures == 0
    await pebble.set_cname(RECORD, TARGET)
    result = await _renew(hass, entry)
    assert result["renewed"] is False
    assert registry.async_get_issue(DOMAIN, issue_id) is None

    # Broken again, then fixed: a renewal failing for another reason (after
    # the delegation check passed) swaps the issue for renewal_failed.
    await pebble.clear_cname(RECORD)
    with pytest.raises(HomeAssistantError):
        await _renew(hass, entry, force=True)
    assert registry.async_get_issue(DOMAIN, issue_id) is not None
    await pebble.set_cname(RECORD, TARGET)
    # The CA itself fails (a DuckDNS outage would not do: Pebble may reuse
    # the valid authorizations and never ask for a TXT record).
    with (
        patch.object(
            AcmeClient,
            "issue_certificate",
            side_effect=AcmeConnectionError("the CA is down"),
        ),
        pytest.raises(HomeAssistantError) as err,
    ):
        await _renew(hass, entry, force=True)
    assert err.value.translation_key == "renewal_failed"
    assert registry.async_get_issue(DOMAIN, issue_id) is None
    assert registry.async_get_issue(DOMAIN, renewal_failed_issue_id(entry.entry_id))
    result = await _renew(hass, entry, force=True)
    assert result["renewed"] is True
    assert registry.async_get_issue(DOMAIN, issue_id) is None
    assert ((ssl_dir / "fullchain.pem").read_bytes()) != before[0]


async def test_issue_goes_when_nothing_is_delegated(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Without own names (or certificates) a left-over issue is removed at setup."""
    _, url = duckdns
    registry = ir.async_get(hass)
    entry = await _entry(hass, url, _options(pebble, ssl_dir))
    issue_id = delegation_issue_id(entry.entry_id)
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="cname_delegation_broken",
        translation_placeholders={"record": RECORD, "target": TARGET, "records": ""},
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert registry.async_get_issue(DOMAIN, issue_id) is None
