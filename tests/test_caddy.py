"""A second real CA: Caddy's acme_server (smallstep's ACME code), as homes run it.

It differs from Pebble where the product used to break: no dns-persist-01,
no terms, a challenge that fails stays pending with an error until it is
POSTed again, and a reset CA forgets every account.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.secure_remote_access.account import account_store
from custom_components.secure_remote_access.const import (
    CONF_ACME_CA_BUNDLE,
    CONF_ACME_DIRECTORY,
    CONF_ACME_DIRECTORY_URL,
    CONF_VALIDATION_METHOD,
    CONF_WILDCARD,
    DOMAIN,
    VALIDATION_AUTOMATIC,
)
from custom_components.secure_remote_access.issues import renewal_failed_issue_id
from custom_components.secure_remote_access.protocol.acme import client as acme_client
from tests.common import (
    certificate_form,
    dns_names,
    last_outcome,
    pebble_options,
    read_leaf,
    renew,
    setup_duckdns_entry,
)
from tests.fakes.caddy import CaddyAcmeServer, DnsRelay, find_caddy
from tests.fakes.duckdns import FakeDuckDns
from tests.fakes.pebble import PebbleServer
from tests.test_certificate_flow import _step_text, _user_step

pytestmark = pytest.mark.skipif(
    find_caddy() is None, reason="caddy not installed: run scripts/setup"
)

CHALLENGE = "_acme-challenge.myhome.duckdns.org"
TIME_SCALE = 0.1  # of the client's challenge retry delays (1 s -> 0.1 s)
DUCKDNS_TTL = 60.0


@pytest.fixture(scope="module")
def relay(pebble: PebbleServer) -> Iterator[DnsRelay]:
    """Caddy's resolver: challtestsrv's answers, late or never when asked to."""
    with DnsRelay(pebble.dns_server) as server:
        yield server


@pytest.fixture(scope="module")
def caddy(relay: DnsRelay) -> Iterator[CaddyAcmeServer]:
    """Caddy 2.11's acme_server validating dns-01 through the relay."""
    with CaddyAcmeServer(relay.address) as server:
        yield server


@pytest.fixture
def caddy_options(
    hass: HomeAssistant,
    pebble: PebbleServer,
    caddy: CaddyAcmeServer,
    relay: DnsRelay,
    ssl_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """Options of an entry getting its certificate from Caddy (Automatic
    validation); the relay starts each test answering at once, uncached."""
    relay.late, relay.silent, relay.ttl = 0, False, 0.0
    relay.queries.clear()
    hass.config.allowlist_external_dirs.add(str(caddy.ca_bundle_path.parent))
    # Time runs ten times faster for the challenge retries (and the relay's
    # TTL is scaled the same way where a test sets one).
    monkeypatch.setattr(acme_client, "DEFAULT_CHALLENGE_RETRY_DELAY", TIME_SCALE)
    return pebble_options(pebble, ssl_dir) | {
        CONF_ACME_DIRECTORY: caddy.directory_url,
        CONF_ACME_CA_BUNDLE: str(caddy.ca_bundle_path),
        CONF_VALIDATION_METHOD: VALIDATION_AUTOMATIC,
    }


@pytest.fixture
async def caddy_entry(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    caddy_options: dict[str, Any],
) -> MockConfigEntry:
    """An entry getting its certificate from Caddy."""
    return await setup_duckdns_entry(hass, duckdns[1], caddy_options)


async def test_config_flow_without_terms(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    caddy: CaddyAcmeServer,
    ssl_dir: Path,
) -> None:
    """Caddy's directory has no terms of service: the step says so (it read
    "asks you to accept its terms of service: -"), has no checkbox, and
    creates the account."""
    hass.config.allowlist_external_dirs.add(str(caddy.ca_bundle_path.parent))
    result = await _user_step(hass, duckdns[1])
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            **certificate_form(pebble, ssl_dir),
            CONF_ACME_DIRECTORY_URL: caddy.directory_url,
            CONF_ACME_CA_BUNDLE: str(caddy.ca_bundle_path),
        },
    )
    assert result["step_id"] == "account"
    assert result["data_schema"].schema == {}
    assert "terms_url" not in result["description_placeholders"]
    text = _step_text("account").format(**result["description_placeholders"])
    assert text.startswith(f"The CA at {caddy.directory_url} publishes no terms")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"][CONF_ACME_DIRECTORY] == caddy.directory_url
    await hass.async_block_till_done()  # the first certificate, right after setup
    assert last_outcome(result["result"])["renewed"] is True


async def test_issuance_and_renewal(
    hass: HomeAssistant, caddy_entry: MockConfigEntry, ssl_dir: Path
) -> None:
    """A 12-hour certificate from Caddy's CA (ordered right after setup), renewed
    on demand, through dns-01."""
    first = last_outcome(caddy_entry)
    assert first["renewed"] is True
    assert first["validation_method"] == "dns-01"
    assert first["validation_note"] == "not_offered"
    leaf = read_leaf(ssl_dir / "fullchain.pem")
    assert "Caddy Local Authority" in leaf.issuer.rfc4514_string()
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.total_seconds() <= 13 * 3600
    second = await renew(hass, caddy_entry, force=True)
    assert second["renewed"] is True
    assert second["serial"] != first["serial"]


async def test_resolver_a_few_seconds_late(
    hass: HomeAssistant, caddy_entry: MockConfigEntry, relay: DnsRelay
) -> None:
    """The value is visible to us, not yet to Caddy's resolver: Caddy keeps the
    challenge pending with its error, and POSTing it again validates it."""
    relay.late = 1
    relay.queries.clear()
    result = await renew(hass, caddy_entry, force=True)
    assert result["renewed"] is True
    assert relay.queries[CHALLENGE] >= 2


async def test_wildcard_through_a_caching_resolver(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    caddy_options: dict[str, Any],
    relay: DnsRelay,
    ssl_dir: Path,
) -> None:
    """Caddy's resolver caches TXT answers for DuckDNS's TTL (60 s), as a
    Pi-hole does. The wildcard and the base name take turns in DuckDNS's one
    TXT value, so Caddy first sees the second challenge's record as the
    first's cached value: POSTing it again until the cache expires validates it."""
    relay.ttl = DUCKDNS_TTL * TIME_SCALE
    entry = await setup_duckdns_entry(
        hass, duckdns[1], caddy_options | {CONF_WILDCARD: True}
    )
    result = last_outcome(entry)  # ordered right after setup
    assert result["renewed"] is True
    leaf = read_leaf(ssl_dir / "fullchain.pem")
    assert set(dns_names(leaf)) == {"myhome.duckdns.org", "*.myhome.duckdns.org"}


async def test_resolver_that_never_sees_the_value(
    hass: HomeAssistant, caddy_entry: MockConfigEntry, relay: DnsRelay, ssl_dir: Path
) -> None:
    """Bounded retries, then the CA's problem type and detail in the action's
    error and the Repairs issue, not a poll time-out."""
    first = read_leaf(ssl_dir / "fullchain.pem").serial_number
    relay.silent = True
    relay.queries.clear()
    with pytest.raises(HomeAssistantError) as caught:
        await renew(hass, caddy_entry, force=True)
    message = str(caught.value)
    assert "after 9 attempts" in message
    assert "(dns)" in message
    assert "still pending" not in message
    assert relay.queries[CHALLENGE] == 9
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, renewal_failed_issue_id(caddy_entry.entry_id)
    )
    assert issue is not None
    detail = (issue.translation_placeholders or {})["detail"]
    assert "after 9 attempts" in detail
    assert "(dns)" in detail
    assert read_leaf(ssl_dir / "fullchain.pem").serial_number == first


async def test_reset_ca_forgets_the_account(
    hass: HomeAssistant, caddy_entry: MockConfigEntry, caddy: CaddyAcmeServer
) -> None:
    """A private CA reset between two renewals: a new account, no failure."""
    await renew(hass, caddy_entry)
    store = account_store(hass)
    _key, before = await store.async_key(caddy.directory_url)
    await hass.async_add_executor_job(caddy.reset_accounts)
    result = await renew(hass, caddy_entry, force=True)
    assert result["renewed"] is True
    _key, after = await store.async_key(caddy.directory_url)
    assert after not in (None, before)
    assert not ir.async_get(hass).async_get_issue(
        DOMAIN, renewal_failed_issue_id(caddy_entry.entry_id)
    )
