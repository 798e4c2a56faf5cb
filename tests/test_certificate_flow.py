"""The certificate steps of the config flow and the options flow, against Pebble."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from homeassistant import config_entries
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
import pytest

from custom_components.secure_remote_access.account import account_store
from custom_components.secure_remote_access.const import (
    CONF_ACME_CA_BUNDLE,
    CONF_ACME_DIRECTORY,
    CONF_ACME_DIRECTORY_URL,
    CONF_CERTIFICATE_PATH,
    CONF_DNS_SERVER,
    CONF_DUCKDNS_URL,
    CONF_EAB_HMAC_KEY,
    CONF_EAB_KID,
    CONF_EXTRA_NAMES,
    CONF_PRIVATE_KEY_PATH,
    CONF_PROFILE,
    CONF_VALIDATION_METHOD,
    CONF_WILDCARD,
    CUSTOM_CA,
    DOMAIN,
    SECTION_TESTING,
    VALIDATION_AUTOMATIC,
    VALIDATION_DNS01,
)
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import DEFAULT_EAB_KEYS, PebbleServer

from .common import (
    TARGET,
    TOKEN,
    StartDuckDns,
    certificate_form,
    deactivate_account,
    last_outcome,
    pebble_options,
    read_leaf,
    renew,
    section_schema,
    setup_duckdns_entry,
    suggested,
)


def _step_text(step: str) -> str:
    """The English description of a config flow step."""
    strings = json.loads(
        (
            Path(__file__).parents[1]
            / "custom_components/secure_remote_access/translations/en.json"
        ).read_text()
    )
    return str(strings["config"]["step"][step]["description"])


async def _user_step(hass: HomeAssistant, url: str) -> dict[str, Any]:
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
    assert result["type"] is FlowResultType.MENU
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "certificate"}
    )


async def test_config_flow_certificate_steps(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """The certificate and terms steps validate, then create the account and entry."""
    _, url = duckdns
    result = await _user_step(hass, url)
    assert result["step_id"] == "certificate"
    flow_id = result["flow_id"]
    options = certificate_form(pebble, ssl_dir)

    bad = {
        **options,
        CONF_ACME_DIRECTORY_URL: "ftp://ca.example/dir",
        CONF_CERTIFICATE_PATH: "/etc/fullchain.pem",
        CONF_EAB_KID: "only-the-id",
    }
    result = await hass.config_entries.flow.async_configure(flow_id, bad)
    assert result["errors"] == {
        CONF_ACME_DIRECTORY_URL: "invalid_directory_url",
        CONF_CERTIFICATE_PATH: "path_not_allowed",
        CONF_EAB_KID: "eab_incomplete",
    }
    # The path error names this installation's allowed directories.
    allowed = result["description_placeholders"]["allowed"]
    assert hass.config.config_dir in allowed
    assert str(ssl_dir.parent) in allowed
    # Everything typed stays, the testing section too.
    schema = result["data_schema"].schema
    assert suggested(schema)[CONF_CERTIFICATE_PATH] == "/etc/fullchain.pem"
    testing = section_schema(schema, SECTION_TESTING)
    assert suggested(testing) == {CONF_DNS_SERVER: pebble.dns_server}

    result = await hass.config_entries.flow.async_configure(
        flow_id, {**options, CONF_PROFILE: "nonexistent"}
    )
    assert result["errors"] == {CONF_PROFILE: "unknown_profile"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {**options, CONF_ACME_DIRECTORY_URL: "https://127.0.0.1:9/dir"}
    )
    assert result["errors"] == {"base": "cannot_connect_ca"}
    detail = result["description_placeholders"]["detail"]
    assert detail == "127.0.0.1:9: connection refused"
    assert "{detail}" not in _step_text("certificate")

    # A file that is no certificate as the CA bundle is a field error, not a crash.
    garbage = ssl_dir / "configuration.yaml"
    garbage.write_text("homeassistant:\n  name: Home\n")
    result = await hass.config_entries.flow.async_configure(
        flow_id, {**options, CONF_ACME_CA_BUNDLE: str(garbage)}
    )
    assert result["errors"] == {CONF_ACME_CA_BUNDLE: "ca_bundle_invalid"}
    assert result["description_placeholders"]["detail"] == str(garbage)
    # Without the bundle Pebble's own CA is not trusted: the error points there.
    without_bundle = {k: v for k, v in options.items() if k != CONF_ACME_CA_BUNDLE}
    result = await hass.config_entries.flow.async_configure(flow_id, without_bundle)
    assert result["errors"] == {CONF_ACME_CA_BUNDLE: "ca_untrusted"}
    detail = result["description_placeholders"]["detail"]
    assert "certificate is not trusted" in detail
    assert "SSLContext" not in detail and "object at" not in detail
    # A mistyped EAB HMAC key and a DNS server that is no address.
    result = await hass.config_entries.flow.async_configure(
        flow_id, {**options, CONF_EAB_KID: "kid", CONF_EAB_HMAC_KEY: "not base64!"}
    )
    assert result["errors"] == {CONF_EAB_HMAC_KEY: "invalid_eab_key"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {**options, SECTION_TESTING: {CONF_DNS_SERVER: "dns.example"}}
    )
    assert result["errors"] == {"base": "invalid_dns_server"}
    assert result["description_placeholders"]["detail"] == "dns.example"

    result = await hass.config_entries.flow.async_configure(flow_id, options)
    assert result["step_id"] == "terms"
    # Pebble's terms are inline text (a data: URL): shown as text.
    assert result["description_placeholders"]["terms_url"] == "“Do what thou wilt”"
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"accept_terms": False}
    )
    assert result["errors"] == {"accept_terms": "terms_required"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"accept_terms": True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"][CONF_ACME_DIRECTORY] == pebble.directory_url
    entry = result["result"]
    # The first certificate is ordered right after setup: no wait, no action.
    await hass.async_block_till_done()
    outcome = last_outcome(entry)
    assert (outcome["renewed"], outcome["reason"]) == (True, "no_certificate")
    assert outcome["serial"] == format(
        read_leaf(ssl_dir / "fullchain.pem").serial_number, "x"
    )


async def test_config_flow_with_eab(
    hass: HomeAssistant,
    pebble_eab: PebbleServer,
    ssl_dir: Path,
    start_duckdns: StartDuckDns,
) -> None:
    """A CA that requires External Account Binding asks for it, then issues."""
    _, url = await start_duckdns(pebble_eab)
    await _eab_flow(hass, url, pebble_eab, ssl_dir)


async def _eab_flow(
    hass: HomeAssistant, url: str, pebble_eab: PebbleServer, ssl_dir: Path
) -> None:
    hass.config.allowlist_external_dirs.add(str(pebble_eab.ca_bundle_path.parent))
    result = await _user_step(hass, url)
    flow_id = result["flow_id"]
    options = certificate_form(pebble_eab, ssl_dir)
    result = await hass.config_entries.flow.async_configure(flow_id, options)
    assert result["errors"] == {CONF_EAB_KID: "eab_required"}
    kid, hmac_key = next(iter(DEFAULT_EAB_KEYS.items()))
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {**options, CONF_EAB_KID: kid, CONF_EAB_HMAC_KEY: "AAAA" + hmac_key[4:]},
    )
    assert result["step_id"] == "terms"
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"accept_terms": True}
    )
    # Wrong credentials send the user back to the form that holds them.
    assert result["step_id"] == "certificate"
    assert result["errors"] == {CONF_EAB_HMAC_KEY: "invalid_eab"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {**options, CONF_EAB_KID: kid, CONF_EAB_HMAC_KEY: hmac_key}
    )
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"accept_terms": True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert last_outcome(result["result"])["renewed"] is True


async def test_options_flow_certificate_on_and_off(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Certificates can be turned on, checked, changed and off in the options."""
    _, url = duckdns
    entry = await setup_duckdns_entry(hass, url, {"update_interval": 7})
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert "certificate_off" not in result["menu_options"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "certificate"}
    )
    assert result["step_id"] == "certificate"
    options = certificate_form(pebble, ssl_dir)
    (ssl_dir / "folder").mkdir()
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            **options,
            CONF_CERTIFICATE_PATH: str(ssl_dir / "folder"),
            CONF_ACME_CA_BUNDLE: str(ssl_dir / "missing.pem"),
            "email": "not an address",
        },
    )
    assert result["errors"] == {
        CONF_CERTIFICATE_PATH: "path_is_directory",
        CONF_ACME_CA_BUNDLE: "ca_bundle_unreadable",
        "email": "invalid_email",
    }
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {**options, CONF_PRIVATE_KEY_PATH: options[CONF_CERTIFICATE_PATH]},
    )
    assert result["errors"] == {CONF_PRIVATE_KEY_PATH: "same_path"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**options, "email": "me@example.org"}
    )
    assert result["step_id"] == "terms"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"accept_terms": True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options["update_interval"] == 7
    assert entry.options["email"] == "me@example.org"
    assert entry.runtime_data.managed is not None

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert "certificate_off" in result["menu_options"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "certificate"}
    )
    # The form starts from the stored settings, never showing secrets; the
    # other CA stored as its URL comes back as "another CA" plus that URL.
    assert result["step_id"] == "certificate"
    assert entry.options[CONF_ACME_DIRECTORY] == pebble.directory_url
    schema = result["data_schema"].schema
    prefilled = suggested(schema)
    assert prefilled[CONF_ACME_DIRECTORY] == CUSTOM_CA
    assert prefilled[CONF_ACME_DIRECTORY_URL] == pebble.directory_url
    assert prefilled["email"] == "me@example.org"
    testing = section_schema(schema, SECTION_TESTING)
    assert suggested(testing) == {CONF_DNS_SERVER: pebble.dns_server}
    # Submitted unchanged, even by a client that leaves the collapsed section
    # out, the stored DNS server stays (renewals would time out without it).
    unchanged = {k: v for k, v in options.items() if k != SECTION_TESTING}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**unchanged, "email": "me@example.org"}
    )
    assert result["step_id"] == "terms"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"accept_terms": True}
    )
    await hass.async_block_till_done()
    assert entry.options[CONF_DNS_SERVER] == pebble.dns_server
    registry = er.async_get(hass)
    renewal_sensors = {
        entity.unique_id
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
        if entity.unique_id.endswith(("_next_renewal", "_last_renewal_result"))
    }
    assert len(renewal_sensors) == 2

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "certificate_off"}
    )
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert entry.options == {"update_interval": 7}
    assert entry.runtime_data.managed is None
    # No orphans: the renewal sensors went with the certificate.
    assert not any(
        entity.unique_id in renewal_sensors
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
    )


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
        result = await _user_step(hass, url)
        options = certificate_form(pebble, ssl_dir)
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
        await hass.async_block_till_done()  # the first certificate, for all three
        assert last_outcome(result["result"])["renewed"] is True
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
    entry = await setup_duckdns_entry(hass, url, {})
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "certificate"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            **certificate_form(pebble, ssl_dir, **{CONF_WILDCARD: True}),
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
        entry = await setup_duckdns_entry(hass, url, {"update_interval": 7})
        result = await hass.config_entries.options.async_init(entry.entry_id)
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"next_step_id": "certificate"}
        )
        options = certificate_form(pebble, ssl_dir)
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


@pytest.mark.parametrize(
    ("method", "accepted"), [(VALIDATION_AUTOMATIC, True), (VALIDATION_DNS01, False)]
)
async def test_persist_delegation_alone_is_enough_when_allowed(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    method: str,
    accepted: bool,
) -> None:
    """Only _validation-persist delegates: fine for automatic, not for dns-01 only."""
    _, url = duckdns
    own = f"persist-{method.replace('_', '')}.dlg-e2e.example.com"
    record = f"_validation-persist.{own}"
    await pebble.set_cname(record, "_validation-persist.myhome.duckdns.org")
    try:
        result = await _user_step(hass, url)
        options = certificate_form(pebble, ssl_dir, **{CONF_VALIDATION_METHOD: method})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {**options, CONF_EXTRA_NAMES: own}
        )
        if accepted:
            assert result["step_id"] == "terms"
        else:
            assert result["errors"] == {CONF_EXTRA_NAMES: "cname_missing"}
            # The record every CA accepts is the one asked for.
            assert result["description_placeholders"]["records"] == (
                f"_acme-challenge.{own} CNAME {TARGET}"
            )
    finally:
        await pebble.clear_cname(record)


async def test_accepting_the_terms_again_after_a_deactivation(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """The CA deactivated the account: accepting the terms again under
    Configure registers a new one (a deactivated key is refused for good)
    instead of blaming External Account Binding credentials never entered."""
    entry = await setup_duckdns_entry(hass, duckdns[1], pebble_options(pebble, ssl_dir))
    await renew(hass, entry)
    old = await deactivate_account(hass, entry)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "certificate"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], certificate_form(pebble, ssl_dir)
    )
    assert result["step_id"] == "terms"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"accept_terms": True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done()
    _key, new = await account_store(hass).async_key(pebble.directory_url)
    assert new not in (None, old)
    renewed = await renew(hass, entry, force=True)
    assert renewed["renewed"] is True
