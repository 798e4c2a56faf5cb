"""The certificate manager: issuance and renewal end to end (Pebble), and its decisions."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import logging
import os
from pathlib import Path
import stat
from typing import Any
from unittest.mock import AsyncMock, patch

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.secure_remote_access import certificate as certificate_module
from custom_components.secure_remote_access.certificate import CertificateManager
from custom_components.secure_remote_access.certificate_settings import (
    CertificateSettings,
)
from custom_components.secure_remote_access.const import (
    CONF_ACME_DIRECTORY,
    CONF_CERTIFICATE_PATH,
    CONF_EXTRA_NAMES,
    CONF_KEY_TYPE,
    CONF_PRIVATE_KEY_PATH,
    CONF_PROFILE,
    CONF_WILDCARD,
    DOMAIN,
    EVENT_CERTIFICATE_RENEWED,
)
from custom_components.secure_remote_access.helpers import (
    default_certificate_dir,
    path_is_allowed,
)
from custom_components.secure_remote_access.issues import (
    delegation_issue_id,
    renewal_failed_issue_id,
)
from custom_components.secure_remote_access.protocol.acme import (
    AcmeClient,
    AcmeConnectionError,
    AlreadyReplacedError,
)
from custom_components.secure_remote_access.protocol.duckdns import DuckDnsClient
from custom_components.secure_remote_access.protocol.pairfiles import RecoveryStatus
from custom_components.secure_remote_access.protocol.schedule import RenewalReason
from custom_components.secure_remote_access.protocol.x509 import (
    CertificateFileError,
    PairVerificationError,
)
from custom_components.secure_remote_access.renewal import RenewalCoordinator
from custom_components.secure_remote_access.solver import duckdns_domain_for
from custom_components.secure_remote_access.status import Problem
from tests.fakes import certs
from tests.fakes.acme_proxy import AcmeFront
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

from .common import (
    OWN,
    RECORD,
    REFUSED_NAME,
    TARGET,
    TOKEN,
    StartDuckDns,
    dns_names,
    last_outcome,
    mock_entry,
    pebble_options,
    read_leaf,
    renew,
    setup_duckdns_entry,
)


async def test_first_issuance_renewal_and_chain(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """Setup issues, reports, fires the event; the action then only renews when due."""
    fake, url = duckdns
    events: list[Event] = []
    hass.bus.async_listen(EVENT_CERTIFICATE_RENEWED, events.append)
    entry = await setup_duckdns_entry(hass, url, pebble_options(pebble, ssl_dir))

    assert len(events) == 1
    first = events[0].data
    assert first["renewed"] is True
    assert first["reason"] == "no_certificate"
    assert first["names"] == ["myhome.duckdns.org"]
    cert_path, key_path = ssl_dir / "fullchain.pem", ssl_dir / "privkey.pem"
    leaf = read_leaf(cert_path)
    assert first["serial"] == format(leaf.serial_number, "x")
    assert first["not_after"] == leaf.not_valid_after_utc.isoformat()
    assert dns_names(leaf) == {"myhome.duckdns.org"}
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert first["config_entry_id"] == entry.entry_id
    # The sensors and diagnostics show what the event said.
    assert {**last_outcome(entry), "config_entry_id": entry.entry_id} == first
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

    second = await renew(hass, entry)
    assert second["renewed"] is False
    assert second["reason"] == "not_due"
    assert second["serial"] == first["serial"]

    forced = await renew(hass, entry, force=True)
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
    entry = await setup_duckdns_entry(
        hass,
        url,
        pebble_options(
            pebble, ssl_dir, **{CONF_WILDCARD: True, CONF_KEY_TYPE: "rsa-2048"}
        ),
        domains=["cabin.duckdns.org", "myhome.duckdns.org"],
    )
    assert last_outcome(entry)["renewed"] is True
    leaf = read_leaf(ssl_dir / "fullchain.pem")
    assert dns_names(leaf) == {
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
    entry = await setup_duckdns_entry(
        hass, url, pebble_options(pebble, ssl_dir, **{CONF_PROFILE: "shortlived"})
    )
    assert last_outcome(entry)["profile"] == "shortlived"
    leaf = read_leaf(ssl_dir / "fullchain.pem")
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
    entry = await setup_duckdns_entry(
        hass, url, pebble_options(pebble, ssl_dir), domains=[REFUSED_NAME]
    )
    with pytest.raises(HomeAssistantError) as err:
        await renew(hass, entry)
    assert err.value.translation_key == "renewal_failed"
    assert REFUSED_NAME in str(err.value.translation_placeholders)
    assert (ssl_dir / "fullchain.pem").read_text() == "old certificate"
    assert (ssl_dir / "privkey.pem").read_text() == "old key"


async def test_huge_problem_detail_is_shown_as_one_bounded_line(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """A CA (or a proxy in front of it) that answers a refusal with a whole
    page of text and markup: the Repairs issue, the sensor and the action's
    error show one line of at most 1000 characters, not 200 KB of Markdown
    headings (nor a recorder refusing the sensor's attributes)."""
    page = "# Maintenance\n\n<b>Refused</b>\r\n" + "* the CA is down\n" * 12000
    problem = {"type": "urn:ietf:params:acme:error:rejectedIdentifier"}
    async with AcmeFront(pebble) as front:
        front.refuse = lambda _method, path: (
            (400, {**problem, "detail": page}, {}) if path == "/order-plz" else None
        )
        entry = await setup_duckdns_entry(
            hass,
            duckdns[1],
            pebble_options(pebble, ssl_dir, acme_directory=front.directory_url),
        )
        with pytest.raises(HomeAssistantError) as caught:
            await renew(hass, entry)
    shown = [
        str(caught.value),
        caught.value.translation_placeholders["detail"],
    ]
    result = hass.states.get("sensor.myhome_duckdns_org_last_renewal_result")
    assert result is not None
    shown.append(result.attributes["last_error"])
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, renewal_failed_issue_id(entry.entry_id)
    )
    assert issue is not None
    shown.append((issue.translation_placeholders or {})["detail"])
    for text in shown:
        assert "# Maintenance <b>Refused</b> * the CA is down * the CA" in text
        assert "\n" not in text
        assert "\r" not in text
        assert len(text) < 1200
    assert caught.value.translation_placeholders["detail"].endswith(
        "… (rejectedIdentifier)"
    )


async def test_dns_that_never_shows_the_record(
    hass: HomeAssistant,
    pebble: PebbleServer,
    ssl_dir: Path,
    start_duckdns: StartDuckDns,
) -> None:
    """Propagation times out with a clear error; the TXT is cleared; files stay."""
    fake, url = await start_duckdns(None)  # its TXT values never reach DNS
    (ssl_dir / "fullchain.pem").write_text("old certificate")
    with patch.object(certificate_module, "DEFAULT_PROPAGATION_TIMEOUT", 1.5):
        # The unreadable pair is replaced right after setup: that fails too.
        entry = await setup_duckdns_entry(hass, url, pebble_options(pebble, ssl_dir))
    assert entry.runtime_data.managed.renewal.state.failures == 1
    with pytest.raises(HomeAssistantError) as err:
        await renew(hass, entry)
    assert err.value.translation_key == "renewal_failed"
    assert "_acme-challenge.myhome.duckdns.org" in str(
        err.value.translation_placeholders
    )
    assert fake.records["myhome"].txt == ""
    assert fake.requests[-1].get("clear") == "true"
    assert (ssl_dir / "fullchain.pem").read_text() == "old certificate"


async def test_crash_while_writing_keeps_old_pair(
    hass: HomeAssistant,
    ssl_dir: Path,
    pebble_entry: MockConfigEntry,
) -> None:
    """A failure after issuance never leaves a half-written pair behind."""
    entry = pebble_entry
    await renew(hass, entry)
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
        await renew(hass, entry, force=True)
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
    with patch(
        "custom_components.secure_remote_access.certificate.write_certificate_pair",
        side_effect=PairVerificationError("names not covered"),
    ):
        entry = await setup_duckdns_entry(hass, url, pebble_options(pebble, ssl_dir))
        assert "names not covered" in str(
            entry.runtime_data.managed.renewal.state.last_error
        )
        with pytest.raises(HomeAssistantError) as err:
            await renew(hass, entry, force=True)
    assert "names not covered" in str(err.value.translation_placeholders)
    assert not (ssl_dir / "fullchain.pem").exists()


async def test_concurrent_calls_run_one_order(
    hass: HomeAssistant,
    pebble_entry: MockConfigEntry,
) -> None:
    """Two calls at once: one order, the other finds the fresh certificate."""
    entry = pebble_entry
    settings = entry.runtime_data.managed.manager.settings
    settings.certificate_path.unlink()  # the pair set up obtained is gone
    first, second = await asyncio.gather(renew(hass, entry), renew(hass, entry))
    assert sorted([first["renewed"], second["renewed"]]) == [False, True]
    assert first["serial"] == second["serial"]


async def test_action_validation(
    hass: HomeAssistant, duckdns: tuple[FakeDuckDns, str]
) -> None:
    """Without certificate settings the action says so, translated."""
    _, url = duckdns
    entry = await setup_duckdns_entry(hass, url, {})
    with pytest.raises(ServiceValidationError) as err:
        await renew(hass, entry)
    assert err.value.translation_key == "certificate_not_configured"


async def test_duckdns_outage_during_issuance(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> None:
    """DuckDNS failing to take the TXT value is a renewal error with its reason."""
    fake, url = duckdns
    fake.txt_outage = "html"  # the order right after setup
    entry = await setup_duckdns_entry(hass, url, pebble_options(pebble, ssl_dir))
    state = entry.runtime_data.managed.renewal.state
    assert "neither OK nor KO" in str(state.last_error)
    fake.outage = "html"
    with pytest.raises(HomeAssistantError) as err:
        await renew(hass, entry)
    assert err.value.translation_key == "renewal_failed"
    assert "neither OK nor KO" in str(err.value.translation_placeholders)
    assert TOKEN not in str(err.value.translation_placeholders)
    assert not (ssl_dir / "fullchain.pem").exists()


async def test_already_replaced_orders_without_replaces(
    hass: HomeAssistant,
    pebble_entry: MockConfigEntry,
) -> None:
    """If the CA refuses ``replaces`` (already replaced), order once without it."""
    entry = pebble_entry
    await renew(hass, entry)
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
        result = await renew(hass, entry, force=True)
    assert result["renewed"] is True
    assert calls[0] is not None
    assert calls[1] is None
    assert len(calls) == 2


def _extra(pebble: PebbleServer, ssl_dir: Path, **extra: Any) -> dict[str, Any]:
    return pebble_options(
        pebble, ssl_dir, **{CONF_EXTRA_NAMES: [OWN, f"*.{OWN}"], **extra}
    )


async def test_one_certificate_through_one_txt_value(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    delegated: None,
) -> None:
    """DuckDNS name, own name and its wildcard: three challenges, one TXT value."""
    fake, url = duckdns
    entry = await setup_duckdns_entry(hass, url, _extra(pebble, ssl_dir))
    result = last_outcome(entry)
    assert result["renewed"] is True
    assert set(result["names"]) == {"myhome.duckdns.org", OWN, f"*.{OWN}"}
    assert dns_names(read_leaf(ssl_dir / "fullchain.pem")) == {
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


async def test_broken_delegation_on_renewal_keeps_certificate(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    delegated: None,
) -> None:
    """Renewal checks the CNAME first: repair issue, files untouched, then cleared."""
    _, url = duckdns
    entry = await setup_duckdns_entry(hass, url, _extra(pebble, ssl_dir))
    await renew(hass, entry)
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
        await renew(hass, entry, force=True)
    assert registry.async_get_issue(DOMAIN, issue_id) is not None

    # After a failure an unforced run is the retry: it fails again, the issue stays.
    with pytest.raises(HomeAssistantError):
        await renew(hass, entry)
    assert registry.async_get_issue(DOMAIN, issue_id) is not None
    assert entry.runtime_data.managed.renewal.state.failures == 3

    await pebble.set_cname(RECORD, TARGET)
    result = await renew(hass, entry)
    assert (result["renewed"], result["reason"]) == (True, "retry")
    assert registry.async_get_issue(DOMAIN, issue_id) is None

    # With nothing failing, a check that is not due still looks at the record.
    await pebble.clear_cname(RECORD)
    result = await renew(hass, entry)
    assert result["renewed"] is False
    assert registry.async_get_issue(DOMAIN, issue_id) is not None
    assert entry.runtime_data.managed.renewal.state.failures == 0
    await pebble.set_cname(RECORD, TARGET)
    result = await renew(hass, entry)
    assert result["renewed"] is False
    assert registry.async_get_issue(DOMAIN, issue_id) is None

    # Broken again, then fixed: a renewal failing for another reason (after
    # the delegation check passed) swaps the issue for renewal_failed.
    await pebble.clear_cname(RECORD)
    with pytest.raises(HomeAssistantError):
        await renew(hass, entry, force=True)
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
        await renew(hass, entry, force=True)
    assert err.value.translation_key == "renewal_failed"
    assert registry.async_get_issue(DOMAIN, issue_id) is None
    assert registry.async_get_issue(DOMAIN, renewal_failed_issue_id(entry.entry_id))
    result = await renew(hass, entry, force=True)
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
    entry = await setup_duckdns_entry(hass, url, pebble_options(pebble, ssl_dir))
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
