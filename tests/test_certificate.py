"""Certificates end to end: config flow, renew_certificate, DuckDNS TXT and Pebble."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import json
import os
from pathlib import Path
import stat
from typing import Any
from unittest.mock import patch

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from homeassistant import config_entries
from homeassistant.const import CONF_TOKEN
from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.secure_remote_access.const import (
    CONF_ACME_CA_BUNDLE,
    CONF_ACME_DIRECTORY,
    CONF_ACME_DIRECTORY_URL,
    CONF_CERTIFICATE_PATH,
    CONF_DNS_SERVER,
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_EAB_HMAC_KEY,
    CONF_EAB_KID,
    CONF_KEY_TYPE,
    CONF_PRIVATE_KEY_PATH,
    CONF_PROFILE,
    CONF_WILDCARD,
    CUSTOM_CA,
    DOMAIN,
    EVENT_CERTIFICATE_RENEWED,
    SECTION_TESTING,
)
from custom_components.secure_remote_access.protocol.acme import (
    AcmeClient,
    AlreadyReplacedError,
)
from custom_components.secure_remote_access.protocol.x509 import PairVerificationError
from tests.fakes.duckdns import FakeDuckDns, start_fake_duckdns, stop_fake_duckdns
from tests.fakes.pebble import DEFAULT_EAB_KEYS, PebbleServer

from .common import TOKEN, section_schema, suggested
from .conftest import REFUSED_NAME


@pytest.fixture
async def duckdns(
    socket_enabled: None, pebble: PebbleServer
) -> AsyncIterator[tuple[FakeDuckDns, str]]:
    """A DuckDNS stand-in whose TXT records show up in challtestsrv's DNS."""
    fake = FakeDuckDns(
        token=TOKEN,
        domains=["myhome", "cabin", "refused"],
        challtestsrv_url=pebble.challtestsrv_url,
    )
    runner, url = await start_fake_duckdns(fake)
    yield fake, url
    await stop_fake_duckdns(fake, runner)


@pytest.fixture
def ssl_dir(hass: HomeAssistant, tmp_path: Path, pebble: PebbleServer) -> Path:
    """A certificate directory Home Assistant may write to."""
    directory = tmp_path / "ssl"
    directory.mkdir()
    hass.config.allowlist_external_dirs = {
        str(tmp_path),
        str(pebble.ca_bundle_path.parent),
    }
    return directory


def _options(pebble: PebbleServer, ssl_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        CONF_ACME_DIRECTORY: pebble.directory_url,
        CONF_ACME_CA_BUNDLE: str(pebble.ca_bundle_path),
        CONF_CERTIFICATE_PATH: str(ssl_dir / "fullchain.pem"),
        CONF_PRIVATE_KEY_PATH: str(ssl_dir / "privkey.pem"),
        CONF_KEY_TYPE: "ec-p256",
        CONF_WILDCARD: False,
        CONF_DNS_SERVER: pebble.dns_server,
        **extra,
    }


def _form(pebble: PebbleServer, ssl_dir: Path, **extra: Any) -> dict[str, Any]:
    """What a user enters in the certificate form for Pebble: another CA's URL."""
    entered = {
        **_options(pebble, ssl_dir, **extra),
        CONF_ACME_DIRECTORY: CUSTOM_CA,
        CONF_ACME_DIRECTORY_URL: pebble.directory_url,
    }
    entered[SECTION_TESTING] = {CONF_DNS_SERVER: entered.pop(CONF_DNS_SERVER)}
    return entered


async def _entry(
    hass: HomeAssistant,
    url: str,
    options: dict[str, Any],
    domains: list[str] | None = None,
) -> MockConfigEntry:
    names = domains or ["myhome.duckdns.org"]
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=names[0],
        unique_id=",".join(names),
        data={CONF_DOMAINS: names, CONF_TOKEN: TOKEN, CONF_DUCKDNS_URL: url},
        options=options,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def _renew(
    hass: HomeAssistant, entry: MockConfigEntry, force: bool = False
) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        "renew_certificate",
        {"config_entry_id": entry.entry_id, "force": force},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    return response


def _step_text(step: str) -> str:
    """The English description of a config flow step."""
    strings = json.loads(
        (
            Path(__file__).parents[1]
            / "custom_components/secure_remote_access/translations/en.json"
        ).read_text()
    )
    return str(strings["config"]["step"][step]["description"])


def _leaf(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def _names(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(san.value.get_values_for_type(x509.DNSName))


async def test_first_issuance_renewal_and_chain(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """The action issues, reports, fires the event, then only renews when due."""
    fake, url = duckdns
    entry = await _entry(hass, url, _options(pebble, ssl_dir))
    events: list[Event] = []
    hass.bus.async_listen(EVENT_CERTIFICATE_RENEWED, events.append)

    first = await _renew(hass, entry)
    assert first["renewed"] is True
    assert first["reason"] == "no_certificate"
    assert first["names"] == ["myhome.duckdns.org"]
    cert_path, key_path = ssl_dir / "fullchain.pem", ssl_dir / "privkey.pem"
    leaf = _leaf(cert_path)
    assert first["serial"] == format(leaf.serial_number, "x")
    assert first["not_after"] == leaf.not_valid_after_utc.isoformat()
    assert _names(leaf) == {"myhome.duckdns.org"}
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    await hass.async_block_till_done()
    assert len(events) == 1
    assert events[0].data["config_entry_id"] == entry.entry_id
    assert events[0].data["serial"] == first["serial"]
    # The TXT record was cleared after the challenge.
    assert fake.records["myhome"].txt == ""
    assert any(q.get("txt") for q in fake.requests)

    # The chain verifies against Pebble's root from its management API.
    root = x509.load_pem_x509_certificate((await pebble.root_pem()).encode())
    chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    store = x509.verification.Store([root])
    verifier = (
        x509.verification.PolicyBuilder()
        .store(store)
        .build_server_verifier(x509.DNSName("myhome.duckdns.org"))
    )
    verifier.verify(chain[0], chain[1:])

    second = await _renew(hass, entry)
    assert second["renewed"] is False
    assert second["reason"] == "not_due"
    assert second["serial"] == first["serial"]

    forced = await _renew(hass, entry, force=True)
    assert forced["renewed"] is True
    assert forced["reason"] == "forced"
    assert forced["serial"] != first["serial"]
    assert (ssl_dir / "fullchain.pem.previous").exists()
    await hass.async_block_till_done()
    assert len(events) == 2


async def test_wildcard_and_rsa_through_one_txt_value(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Base name and wildcard share one DuckDNS TXT value: answered one at a time."""
    fake, url = duckdns
    entry = await _entry(
        hass,
        url,
        _options(pebble, ssl_dir, **{CONF_WILDCARD: True, CONF_KEY_TYPE: "rsa-2048"}),
        domains=["cabin.duckdns.org", "myhome.duckdns.org"],
    )
    result = await _renew(hass, entry)
    assert result["renewed"] is True
    leaf = _leaf(ssl_dir / "fullchain.pem")
    assert _names(leaf) == {
        "cabin.duckdns.org",
        "*.cabin.duckdns.org",
        "myhome.duckdns.org",
        "*.myhome.duckdns.org",
    }
    public_key = leaf.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.key_size == 2048
    set_values = [
        q["txt"] for q in fake.requests if q.get("txt") not in (None, "removed")
    ]
    assert len(set_values) >= 2
    assert fake.records["myhome"].txt == ""
    assert fake.records["cabin"].txt == ""


async def test_profile_is_requested(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """A profile the CA offers is used for the order."""
    _, url = duckdns
    entry = await _entry(
        hass, url, _options(pebble, ssl_dir, **{CONF_PROFILE: "shortlived"})
    )
    result = await _renew(hass, entry)
    assert result["profile"] == "shortlived"
    leaf = _leaf(ssl_dir / "fullchain.pem")
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.days < 10


async def test_refused_name_keeps_old_pair(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """A name the CA refuses gives the CA's reason and leaves the files alone."""
    _, url = duckdns
    (ssl_dir / "fullchain.pem").write_text("old certificate")
    (ssl_dir / "privkey.pem").write_text("old key")
    entry = await _entry(hass, url, _options(pebble, ssl_dir), domains=[REFUSED_NAME])
    with pytest.raises(HomeAssistantError) as err:
        await _renew(hass, entry)
    assert err.value.translation_key == "renewal_failed"
    assert REFUSED_NAME in str(err.value.translation_placeholders)
    assert (ssl_dir / "fullchain.pem").read_text() == "old certificate"
    assert (ssl_dir / "privkey.pem").read_text() == "old key"


async def test_dns_that_never_shows_the_record(
    hass: HomeAssistant,
    pebble: PebbleServer,
    ssl_dir: Path,
    socket_enabled: None,
) -> None:
    """Propagation times out with a clear error; the TXT is cleared; files stay."""
    fake = FakeDuckDns(token=TOKEN, domains=["myhome"])  # never reaches DNS
    runner, url = await start_fake_duckdns(fake)
    try:
        (ssl_dir / "fullchain.pem").write_text("old certificate")
        entry = await _entry(hass, url, _options(pebble, ssl_dir))
        entry.runtime_data.managed.manager.propagation_timeout = 1.5
        with pytest.raises(HomeAssistantError) as err:
            await _renew(hass, entry)
        assert err.value.translation_key == "renewal_failed"
        assert "_acme-challenge.myhome.duckdns.org" in str(
            err.value.translation_placeholders
        )
        assert fake.records["myhome"].txt == ""
        assert fake.requests[-1].get("clear") == "true"
        assert (ssl_dir / "fullchain.pem").read_text() == "old certificate"
    finally:
        await stop_fake_duckdns(fake, runner)


async def test_crash_while_writing_keeps_old_pair(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """A failure after issuance never leaves a half-written pair behind."""
    _, url = duckdns
    entry = await _entry(hass, url, _options(pebble, ssl_dir))
    await _renew(hass, entry)
    before = (
        (ssl_dir / "fullchain.pem").read_bytes(),
        (ssl_dir / "privkey.pem").read_bytes(),
    )
    real_replace = os.replace

    def crash_on_certificate(src: Any, dst: Any) -> None:
        if str(dst).endswith("fullchain.pem"):
            raise OSError("disk full")
        real_replace(src, dst)

    with (
        patch(
            "custom_components.secure_remote_access.protocol.pairfiles.os.replace",
            side_effect=crash_on_certificate,
        ),
        pytest.raises(HomeAssistantError),
    ):
        await _renew(hass, entry, force=True)
    after = (
        (ssl_dir / "fullchain.pem").read_bytes(),
        (ssl_dir / "privkey.pem").read_bytes(),
    )
    assert after == before


async def test_bad_issued_pair_is_refused(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Verification failures before writing surface as renewal errors."""
    _, url = duckdns
    entry = await _entry(hass, url, _options(pebble, ssl_dir))
    with (
        patch(
            "custom_components.secure_remote_access.certificate.write_certificate_pair",
            side_effect=PairVerificationError("names not covered"),
        ),
        pytest.raises(HomeAssistantError) as err,
    ):
        await _renew(hass, entry)
    assert "names not covered" in str(err.value.translation_placeholders)
    assert not (ssl_dir / "fullchain.pem").exists()


async def test_concurrent_calls_run_one_order(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Two calls at once: one order, the other finds the fresh certificate."""
    fake, url = duckdns
    entry = await _entry(hass, url, _options(pebble, ssl_dir))
    first, second = await asyncio.gather(_renew(hass, entry), _renew(hass, entry))
    assert sorted([first["renewed"], second["renewed"]]) == [False, True]
    assert first["serial"] == second["serial"]


async def test_action_validation(
    hass: HomeAssistant, duckdns: tuple[FakeDuckDns, str]
) -> None:
    """Without certificate settings the action says so, translated."""
    _, url = duckdns
    entry = await _entry(hass, url, {})
    with pytest.raises(ServiceValidationError) as err:
        await _renew(hass, entry)
    assert err.value.translation_key == "certificate_not_configured"


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
    options = _form(pebble, ssl_dir)

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
    await hass.async_block_till_done()
    response = await _renew(hass, entry)
    assert response["renewed"] is True


async def test_config_flow_with_eab(
    hass: HomeAssistant,
    pebble_eab: PebbleServer,
    ssl_dir: Path,
    socket_enabled: None,
) -> None:
    """A CA that requires External Account Binding asks for it, then issues."""
    fake = FakeDuckDns(
        token=TOKEN, domains=["myhome"], challtestsrv_url=pebble_eab.challtestsrv_url
    )
    runner, url = await start_fake_duckdns(fake)
    try:
        await _eab_flow(hass, url, pebble_eab, ssl_dir)
    finally:
        await stop_fake_duckdns(fake, runner)


async def _eab_flow(
    hass: HomeAssistant, url: str, pebble_eab: PebbleServer, ssl_dir: Path
) -> None:
    hass.config.allowlist_external_dirs.add(str(pebble_eab.ca_bundle_path.parent))
    result = await _user_step(hass, url)
    flow_id = result["flow_id"]
    options = _form(pebble_eab, ssl_dir)
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
    response = await _renew(hass, result["result"])
    assert response["renewed"] is True


async def test_options_flow_certificate_on_and_off(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Certificates can be turned on, checked, changed and off in the options."""
    _, url = duckdns
    entry = await _entry(hass, url, {"update_interval": 7})
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert "certificate_off" not in result["menu_options"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "certificate"}
    )
    assert result["step_id"] == "certificate"
    options = _form(pebble, ssl_dir)
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


async def test_duckdns_outage_during_issuance(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """DuckDNS failing to take the TXT value is a renewal error with its reason."""
    fake, url = duckdns
    entry = await _entry(hass, url, _options(pebble, ssl_dir))
    fake.outage = "html"
    with pytest.raises(HomeAssistantError) as err:
        await _renew(hass, entry)
    assert err.value.translation_key == "renewal_failed"
    assert "neither OK nor KO" in str(err.value.translation_placeholders)
    assert TOKEN not in str(err.value.translation_placeholders)
    assert not (ssl_dir / "fullchain.pem").exists()


async def test_already_replaced_orders_without_replaces(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """If the CA refuses ``replaces`` (already replaced), order once without it."""
    _, url = duckdns
    entry = await _entry(hass, url, _options(pebble, ssl_dir))
    await _renew(hass, entry)
    real = AcmeClient.new_order
    calls: list[str | None] = []

    async def first_already_replaced(
        self: AcmeClient, *args: Any, **kwargs: Any
    ) -> Any:
        calls.append(kwargs.get("replaces"))
        if len(calls) == 1:
            raise AlreadyReplacedError(
                AlreadyReplacedError.problem_type, "replaced", status=409
            )
        return await real(self, *args, **kwargs)

    with patch.object(AcmeClient, "new_order", first_already_replaced):
        result = await _renew(hass, entry, force=True)
    assert result["renewed"] is True
    assert calls[0] is not None
    assert calls[1] is None
    assert len(calls) == 2
