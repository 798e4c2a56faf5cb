"""Options apply at once: a change the certificate on disk no longer fits orders
a new one within a minute (the options screen says so first), any other change
orders nothing, and the first certificate of an entry is ordered right after
setup. Against Pebble (and a second Pebble as another CA)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from homeassistant.const import CONF_TOKEN, EVENT_HOMEASSISTANT_STARTED
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.secure_remote_access.certificate import (
    CertificateManager,
    CertificateRenewalError,
)
from custom_components.secure_remote_access.certificate_settings import (
    CertificateSettings,
)
from custom_components.secure_remote_access.const import (
    CONF_ACME_CA_BUNDLE,
    CONF_ACME_DIRECTORY_URL,
    CONF_CERTIFICATE_PATH,
    CONF_DNS_SERVER,
    CONF_DUCKDNS_URL,
    CONF_EMAIL,
    CONF_EXTRA_NAMES,
    CONF_KEY_TYPE,
    CONF_PRIVATE_KEY_PATH,
    CONF_PROFILE,
    CONF_WILDCARD,
    DOMAIN,
    EVENT_CERTIFICATE_RENEWED,
    SECTION_TESTING,
)
from custom_components.secure_remote_access.issues import renewal_failed_issue_id
from custom_components.secure_remote_access.protocol.schedule import (
    lifetime_renewal_time,
)
from custom_components.secure_remote_access.renewal import FIRST_CHECK_DELAY
from custom_components.secure_remote_access.renewal_state import renewal_store
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer

from .common import (
    NAME,
    OWN,
    TOKEN,
    advance,
    certificate_form,
    disk_full,
    dns_names,
    last_outcome,
    mock_entry,
    pebble_options,
    read_leaf,
    renew,
    setup_duckdns_entry,
)

NEXT = "sensor.myhome_duckdns_org_next_certificate_renewal"
RESULT = "sensor.myhome_duckdns_org_last_renewal_result"


@pytest.fixture(scope="module")
def second_ca(pebble: PebbleServer) -> Iterator[PebbleServer]:
    """Another CA (a Pebble with roots of its own) that sees the same DNS records."""
    with PebbleServer(validation_dns=pebble.dns_server) as server:
        yield server


@pytest.fixture
def orders() -> Iterator[list[CertificateSettings]]:
    """The settings of every order the entries place (the real orders run)."""
    placed: list[CertificateSettings] = []
    real = CertificateManager.async_order

    async def order(self: CertificateManager, *args: Any, **kwargs: Any) -> Any:
        placed.append(self.settings)
        return await real(self, *args, **kwargs)

    with patch.object(CertificateManager, "async_order", order):
        yield placed


async def _entry(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    **options: Any,
) -> MockConfigEntry:
    """An entry whose first certificate (from Pebble) is on disk."""
    entry = await setup_duckdns_entry(
        hass, duckdns[1], pebble_options(pebble, ssl_dir, **options)
    )
    assert last_outcome(entry)["reason"] == "no_certificate"
    return entry


async def _configure_certificate(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    form: dict[str, Any],
) -> dict[str, Any]:
    """Configure -> Certificate with ``form``, terms accepted: what comes next."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "certificate"}
    )
    result = await hass.config_entries.options.async_configure(result["flow_id"], form)
    assert result["step_id"] == "terms", result.get("errors")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"accept_terms": True}
    )
    return dict(result)


def _serial(ssl_dir: Path) -> int:
    return read_leaf(ssl_dir / "fullchain.pem").serial_number


def _next_renewal(hass: HomeAssistant) -> Any:
    state = hass.states.get(NEXT)
    assert state is not None
    return dt_util.parse_datetime(state.state)


async def test_first_certificate_right_after_setup(
    hass: HomeAssistant,
    ticking: Any,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """No first-check delay before the first certificate; a fitting one keeps it.

    Nothing moves the clock: the certificate is there when setup is done.
    """
    events = async_capture_events(hass, EVENT_CERTIFICATE_RENEWED)
    entry = await _entry(hass, duckdns, pebble, ssl_dir)
    assert [event.data["reason"] for event in events] == ["no_certificate"]
    assert len(orders) == 1
    leaf = read_leaf(ssl_dir / "fullchain.pem")
    assert abs(
        _next_renewal(hass)
        - lifetime_renewal_time(leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    ) < timedelta(seconds=1)

    # A restart with a certificate that fits: the routine check waits 10 to 60 s.
    before = dt_util.utcnow()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    after = dt_util.utcnow()
    renewal = entry.runtime_data.managed.renewal
    assert renewal.next_check is not None
    assert renewal.next_check - before >= timedelta(seconds=FIRST_CHECK_DELAY[0])
    assert renewal.next_check - after <= timedelta(seconds=FIRST_CHECK_DELAY[1])
    assert hass.states.get(RESULT).state == "renewed"  # not checked again yet
    await advance(hass, ticking, timedelta(seconds=FIRST_CHECK_DELAY[1]))
    assert hass.states.get(RESULT).state == "not_due"
    assert len(orders) == 1


async def test_key_type_change_is_applied_within_a_minute(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """P-256 to P-384: the screen says so, then the file on disk is P-384."""
    entry = await _entry(hass, duckdns, pebble, ssl_dir)
    events = async_capture_events(hass, EVENT_CERTIFICATE_RENEWED)
    first = _serial(ssl_dir)

    result = await _configure_certificate(
        hass, entry, certificate_form(pebble, ssl_dir, **{CONF_KEY_TYPE: "ec-p384"})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "certificate_renew"
    assert result["description_placeholders"] == {
        "key_type_now": "ECDSA P-256",
        "key_type_new": "**ECDSA P-384**",
        "names_now": NAME,
        "names_new": NAME,
        "ca_now": pebble.directory_url,
        "ca_new": pebble.directory_url,
        "profile_now": "-",
        "profile_new": "-",
    }
    assert entry.options[CONF_KEY_TYPE] == "ec-p256", "saved before confirming"
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # no clock moved: no timer waited for

    leaf = read_leaf(ssl_dir / "fullchain.pem")
    assert leaf.serial_number != first
    public_key = leaf.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.key_size == 384
    assert [event.data["reason"] for event in events] == ["key_type_changed"]
    assert len(orders) == 2
    assert hass.states.get(RESULT).state == "renewed"
    assert _next_renewal(hass) > dt_util.utcnow() + timedelta(days=1)


@pytest.mark.parametrize(
    ("before", "change", "reason", "row", "names"),
    [
        pytest.param(
            {},
            {CONF_WILDCARD: True},
            "names_changed",
            "names",
            {NAME, f"*.{NAME}"},
            id="wildcard_on",
        ),
        pytest.param(
            {CONF_WILDCARD: True},
            {CONF_WILDCARD: False},
            "names_changed",
            "names",
            {NAME},
            id="wildcard_off",
        ),
        pytest.param(
            {},
            {CONF_EXTRA_NAMES: OWN},
            "names_changed",
            "names",
            {NAME, OWN},
            id="own_domain",
        ),
        pytest.param(
            {},
            {CONF_KEY_TYPE: "rsa-2048"},
            "key_type_changed",
            "key_type",
            {NAME},
            id="rsa",
        ),
        pytest.param(
            {},
            {CONF_PROFILE: "shortlived"},
            "profile_changed",
            "profile",
            {NAME},
            id="profile",
        ),
    ],
)
async def test_change_the_certificate_no_longer_fits(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    delegated: None,
    orders: list[CertificateSettings],
    before: dict[str, Any],
    change: dict[str, Any],
    reason: str,
    row: str,
    names: set[str],
) -> None:
    """Each setting the certificate shows (or was ordered with) is applied at once."""
    entry = await _entry(hass, duckdns, pebble, ssl_dir, **before)
    events = async_capture_events(hass, EVENT_CERTIFICATE_RENEWED)
    result = await _configure_certificate(
        hass, entry, certificate_form(pebble, ssl_dir, **{**before, **change})
    )
    assert result["step_id"] == "certificate_renew"
    placeholders = result["description_placeholders"]
    bold = {key for key, value in placeholders.items() if value.startswith("**")}
    assert bold == {f"{row}_new"}
    # A wildcard name is text in the Markdown table, not the start of emphasis.
    assert all("*." not in value.replace("\\*.", "") for value in placeholders.values())
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    assert [event.data["reason"] for event in events] == [reason]
    assert len(orders) == 2
    leaf = read_leaf(ssl_dir / "fullchain.pem")
    assert dns_names(leaf) == names
    if row == "key_type":
        assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    if row == "profile":
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert lifetime < timedelta(days=10)
        assert last_outcome(entry)["profile"] == "shortlived"


async def test_ca_change_gets_a_certificate_of_the_new_ca(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    second_ca: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """Another CA: the screen names both, the new certificate chains to the new CA."""
    hass.config.allowlist_external_dirs.add(str(second_ca.ca_bundle_path.parent))
    entry = await _entry(hass, duckdns, pebble, ssl_dir)
    form = certificate_form(pebble, ssl_dir)
    form |= {
        CONF_ACME_DIRECTORY_URL: second_ca.directory_url,
        CONF_ACME_CA_BUNDLE: str(second_ca.ca_bundle_path),
    }
    result = await _configure_certificate(hass, entry, form)
    assert result["step_id"] == "certificate_renew"
    placeholders = result["description_placeholders"]
    assert placeholders["ca_now"] == pebble.directory_url
    assert placeholders["ca_new"] == f"**{second_ca.directory_url}**"
    await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()

    assert [settings.directory_url for settings in orders] == [
        pebble.directory_url,
        second_ca.directory_url,
    ]
    chain = x509.load_pem_x509_certificates((ssl_dir / "fullchain.pem").read_bytes())
    root = x509.load_pem_x509_certificate((await second_ca.root_pem()).encode())
    verifier = (
        x509.verification.PolicyBuilder()
        .store(x509.verification.Store([root]))
        .build_server_verifier(x509.DNSName(NAME))
    )
    verifier.verify(chain[0], chain[1:])
    assert last_outcome(entry)["reason"] == "ca_changed"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({CONF_EMAIL: "me@example.org"}, id="email"),
        pytest.param(
            {SECTION_TESTING: {CONF_DNS_SERVER: "127.0.0.1:53"}}, id="dns_server"
        ),
        pytest.param({}, id="same_values"),
    ],
)
async def test_change_the_certificate_fits_orders_nothing(
    hass: HomeAssistant,
    ticking: Any,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
    change: dict[str, Any],
) -> None:
    """E-mail, propagation DNS server, the same values again: saved, nothing ordered."""
    entry = await _entry(hass, duckdns, pebble, ssl_dir)
    serial = _serial(ssl_dir)
    form = certificate_form(pebble, ssl_dir)
    form = {**form, **change}
    result = await _configure_certificate(hass, entry, form)
    assert result["type"] is FlowResultType.CREATE_ENTRY  # no confirmation step
    await hass.async_block_till_done()
    await advance(hass, ticking, timedelta(minutes=2), background=True)
    assert len(orders) == 1
    assert _serial(ssl_dir) == serial
    assert _next_renewal(hass) > dt_util.utcnow() + timedelta(days=1)
    assert entry.options.get(CONF_EMAIL) == change.get(CONF_EMAIL)


async def test_change_during_a_running_order(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """The order of the old settings is dropped; the new settings' order follows."""
    fake, url = duckdns
    hanging = asyncio.Event()
    fake.txt_outage, fake.on_hang = "hang", hanging.set
    entry = mock_entry(pebble_options(pebble, ssl_dir), **{CONF_DUCKDNS_URL: url})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hanging.wait()  # the first order (P-256) waits for its TXT value

    # No certificate on disk yet: nothing to replace, saved at once.
    result = await _configure_certificate(
        hass, entry, certificate_form(pebble, ssl_dir, **{CONF_KEY_TYPE: "ec-p384"})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # unloaded (the order cancelled), reloaded

    assert [settings.key_type for settings in orders] == ["ec-p256", "ec-p384"]
    public_key = read_leaf(ssl_dir / "fullchain.pem").public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.key_size == 384
    assert not (ssl_dir / "fullchain.pem.previous").exists(), "P-256 was written"


async def test_certificate_kept_for_the_old_settings_is_not_written(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """A P-256 certificate issued before the change but never written stays unwritten."""
    entry = await _entry(hass, duckdns, pebble, ssl_dir)
    first = _serial(ssl_dir)
    with disk_full(), pytest.raises(HomeAssistantError) as err:
        await renew(hass, entry, force=True)  # issued, kept for writing
    assert "No space left" in err.value.translation_placeholders["detail"]
    assert len(orders) == 2
    result = await _configure_certificate(
        hass, entry, certificate_form(pebble, ssl_dir, **{CONF_KEY_TYPE: "ec-p384"})
    )
    await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()

    assert len(orders) == 3, "the kept certificate of the old settings was written"
    public_key = read_leaf(ssl_dir / "fullchain.pem").public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.key_size == 384
    previous = x509.load_pem_x509_certificates(
        (ssl_dir / "fullchain.pem.previous").read_bytes()
    )[0]
    assert previous.serial_number == first


async def test_pending_renewal_survives_a_restart(
    hass: HomeAssistant,
    ticking: Any,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """Changed while Home Assistant starts, restarted: ordered once it has started.

    The profile is not in the certificate: what it was ordered with is renewal
    state, read back from the store after the restart.
    """
    entry = await _entry(hass, duckdns, pebble, ssl_dir)
    hass.set_state(CoreState.starting)
    changed_at = dt_util.utcnow()
    result = await _configure_certificate(
        hass,
        entry,
        certificate_form(pebble, ssl_dir, **{CONF_PROFILE: "shortlived"}),
    )
    await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert changed_at.replace(microsecond=0) <= _next_renewal(hass) <= dt_util.utcnow()

    await advance(hass, ticking, timedelta(minutes=5))
    restarted_at = dt_util.utcnow()
    assert await hass.config_entries.async_reload(entry.entry_id)  # the restart
    await hass.async_block_till_done()
    stored = await renewal_store(hass, entry.entry_id).async_load()
    assert stored is not None
    assert stored["ordered_profile"] is None  # the certificate on disk's
    assert len(orders) == 1
    next_renewal = _next_renewal(hass)
    assert restarted_at.replace(microsecond=0) <= next_renewal <= dt_util.utcnow()

    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await hass.async_block_till_done()
    assert len(orders) == 2
    assert last_outcome(entry)["reason"] == "profile_changed"
    leaf = read_leaf(ssl_dir / "fullchain.pem")
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc < timedelta(days=10)


async def test_a_fix_in_the_options_ends_the_backoff(
    hass: HomeAssistant,
    ticking: Any,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """Three failures put the next attempt 100 minutes out; the fix orders at once."""
    blocker = ssl_dir / "blocker"
    blocker.write_text("a file where the directory should be")
    entry = await setup_duckdns_entry(
        hass,
        duckdns[1],
        pebble_options(
            pebble,
            ssl_dir,
            **{
                CONF_CERTIFICATE_PATH: str(blocker / "fullchain.pem"),
                CONF_PRIVATE_KEY_PATH: str(blocker / "privkey.pem"),
            },
        ),
    )
    await advance(hass, ticking, timedelta(minutes=1, seconds=1))
    await advance(hass, ticking, timedelta(minutes=10, seconds=1))
    renewal = entry.runtime_data.managed.renewal
    assert renewal.state.failures == 3
    assert _next_renewal(hass) - dt_util.utcnow() > timedelta(minutes=99)
    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, renewal_failed_issue_id(entry.entry_id))

    result = await _configure_certificate(
        hass, entry, certificate_form(pebble, ssl_dir)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert (ssl_dir / "fullchain.pem").exists()
    assert entry.runtime_data.managed.renewal.state.failures == 0
    assert hass.states.get(RESULT).state == "renewed"
    assert not issues.async_get_issue(DOMAIN, renewal_failed_issue_id(entry.entry_id))


async def test_reconfigured_names_are_applied_at_once(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """Reconfigure with another DuckDNS name: it says so, and the names follow."""
    entry = await _entry(hass, duckdns, pebble, ssl_dir)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"domain": "myhome, cabin", CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_renewal"
    await hass.async_block_till_done()
    assert dns_names(read_leaf(ssl_dir / "fullchain.pem")) == {
        NAME,
        "cabin.duckdns.org",
    }
    assert last_outcome(entry)["reason"] == "names_changed"

    # Only the token again: nothing to order, Home Assistant's own message.
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"domain": "myhome, cabin", CONF_TOKEN: TOKEN}
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert len(orders) == 2


async def test_change_during_a_rate_limit_says_when(
    hass: HomeAssistant,
    ticking: Any,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """The CA asked to wait 3 hours: the screen says the order waits until
    then (not "within a minute"), and the P-384 certificate comes then."""
    entry = await _entry(hass, duckdns, pebble, ssl_dir)
    retry_after = dt_util.utcnow() + timedelta(hours=3)
    refusal = CertificateRenewalError("rateLimited", retry_after)
    with (
        patch.object(CertificateManager, "async_order", side_effect=refusal),
        pytest.raises(HomeAssistantError),
    ):
        await renew(hass, entry, force=True)

    result = await _configure_certificate(
        hass, entry, certificate_form(pebble, ssl_dir, **{CONF_KEY_TYPE: "ec-p384"})
    )
    assert result["step_id"] == "certificate_renew_later"
    until = dt_util.as_local(retry_after).strftime("%Y-%m-%d %H:%M")
    assert result["description_placeholders"]["until"] == until
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert len(orders) == 1, "ordered during the CA's wait"
    assert abs(_next_renewal(hass) - retry_after) < timedelta(seconds=1)

    # A minute past the wait: the ticking clock and the loop's timers drift
    # apart on a busy machine (a second was not always enough).
    await advance(
        hass,
        ticking,
        retry_after - dt_util.utcnow() + timedelta(minutes=1),
        background=True,
    )
    public_key = read_leaf(ssl_dir / "fullchain.pem").public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.key_size == 384


async def test_reconfigured_token_with_a_pending_key_change_says_no_new_names(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
    orders: list[CertificateSettings],
) -> None:
    """The P-384 order failed (say DuckDNS refused the TXT value); the user then
    enters the token again under Reconfigure, names unchanged: the closing
    message must not claim the certificate lacks new names."""
    entry = await _entry(hass, duckdns, pebble, ssl_dir)
    result = await _configure_certificate(
        hass, entry, certificate_form(pebble, ssl_dir, **{CONF_KEY_TYPE: "ec-p384"})
    )
    refusal = CertificateRenewalError("DuckDNS answered HTTP 500")
    with patch.object(CertificateManager, "async_order", side_effect=refusal):
        await hass.config_entries.options.async_configure(result["flow_id"], {})
        await hass.async_block_till_done()
    assert hass.states.get(RESULT).state == "failed"

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"domain": "myhome", CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] != "reconfigure_renewal"
