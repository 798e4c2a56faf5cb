"""Shared fixtures for the Secure Remote Access tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_TOKEN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

# Import the integration before any hass fixture runs, so that Home Assistant's
# loader finds this repository's custom_components package, not the plugin's.
from custom_components.secure_remote_access.certificate import CertificateManager
from custom_components.secure_remote_access.const import CONF_DOMAINS, DOMAIN
from custom_components.secure_remote_access.renewal import FIRST_CHECK_DELAY
from tests.blocking import detect_blocking_calls
from tests.fakes import certs
from tests.fakes.duckdns import FakeDuckDns, start_fake_duckdns, stop_fake_duckdns
from tests.fakes.igd import FakeIgd
from tests.fakes.issuer import FakeCa
from tests.fakes.miniupnpd import (
    LOCATION,
    LOCATION6,
    HomeNetwork,
    RouterConfig,
    available as miniupnpd_available,
    home_network,
)
from tests.fakes.pebble import DEFAULT_BLOCKLIST, PebbleServer
from tests.fakes.router import FakeRouter, fritzbox
from tests.translations_guard import check_translations

from .common import (
    DOMAINS,
    RECORD,
    REFUSED_NAME,
    TARGET,
    TOKEN,
    UPDATE_URL,
    SetupEntry,
    StartDuckDns,
    advance,
    duckdns_reply,
    managed_options,
    mock_entry,
    pebble_options,
    setup_duckdns_entry,
    setup_integration,
)
from .ipv6_home import SHARED_IPV4, Ipv6Home, router_seen_at, router_udn, ssdp_sees
from .lan import on_the_lan
from .remote_home import Home, home_with

# Build the test CAs before any test freezes time (cryptography rejects
# datetimes of the real class while freezegun's class is patched in).
certs.shared_pki()
certs.other_pki()


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    enable_custom_integrations: None,
) -> Generator[None]:
    """Let every test load custom integrations from this repository."""
    yield


@pytest.fixture(autouse=True)
def fake_dns() -> Generator[dict[str, tuple[str, ...]]]:
    """DuckDNS's name servers as the remote-access check sees them: no query
    leaves the host. Tests put answers in the dict (name -> addresses); a name
    not in it gets no answer."""
    answers: dict[str, tuple[str, ...]] = {}

    async def lookup(
        name: str, nameservers: Any = None, query_timeout: float = 3.0
    ) -> tuple[str, ...] | None:
        return answers.get(name)

    with patch(
        "custom_components.secure_remote_access.remote_access.lookup_addresses",
        lookup,
    ):
        yield answers


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Snapshots in Home Assistant's format (the plugin's own override loses to syrupy's)."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture(autouse=True)
def no_blocking_calls_in_the_loop() -> Generator[None]:
    """Fail a test in which our code blocked the event loop (file, TLS, sleep...)."""
    with detect_blocking_calls() as calls:
        yield
    assert not calls.found, "blocking calls in the event loop:\n" + "\n".join(
        dict.fromkeys(calls.found)
    )


@pytest.fixture(autouse=True)
def every_screen_translated() -> Generator[list[str]]:
    """Fail a test that showed an issue or a flow screen without its English text.

    A test that shows one on purpose removes the problems it expects from the list.
    """
    with check_translations() as problems:
        yield problems
    assert not problems, "texts missing:\n" + "\n".join(dict.fromkeys(problems))


@pytest.fixture
def duckdns_response() -> dict[str, Any]:
    """How the mocked DuckDNS answers updates (beyond OK); parametrize for others."""
    return {}


@pytest.fixture
def mock_duckdns(
    aioclient_mock: AiohttpClientMocker, duckdns_response: dict[str, Any]
) -> AiohttpClientMocker:
    """DuckDNS answers every address update with ``duckdns_response``."""
    aioclient_mock.get(UPDATE_URL, **{"text": duckdns_reply(), **duckdns_response})
    return aioclient_mock


@pytest.fixture
def config_entry() -> MockConfigEntry:
    """A config entry for one DuckDNS name (not yet added)."""
    return mock_entry()


@pytest.fixture
async def init_integration(
    hass: HomeAssistant,
    mock_duckdns: AiohttpClientMocker,
    config_entry: MockConfigEntry,
) -> MockConfigEntry:
    """The ``config_entry``, set up against the mocked DuckDNS."""
    await setup_integration(hass, config_entry)
    return config_entry


@pytest.fixture
def setup_entry(hass: HomeAssistant, mock_duckdns: AiohttpClientMocker) -> SetupEntry:
    """Set up an entry with the given options (background tasks awaited)."""

    async def setup(
        options: dict[str, Any] | None = None, *, wait_background: bool = True
    ) -> MockConfigEntry:
        entry = mock_entry()
        entry.add_to_hass(hass)
        if options:
            hass.config_entries.async_update_entry(entry, options=options)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=wait_background)
        return entry

    return setup


@pytest.fixture
async def start_duckdns(socket_enabled: None) -> AsyncIterator[StartDuckDns]:
    """Start DuckDNS stand-ins whose TXT records show up in a Pebble's DNS (or none)."""
    started: list[tuple[FakeDuckDns, Any]] = []

    async def start(
        pebble: PebbleServer | None, domains: list[str] | None = None, **kwargs: Any
    ) -> tuple[FakeDuckDns, str]:
        fake = FakeDuckDns(
            token=TOKEN,
            domains=domains or ["myhome"],
            # Without a Pebble the TXT values never reach any DNS.
            challtestsrv_url=pebble.challtestsrv_url if pebble else None,
        )
        runner, url = await start_fake_duckdns(fake, **kwargs)
        started.append((fake, runner))
        return fake, url

    yield start
    for fake, runner in started:
        await stop_fake_duckdns(fake, runner)


@pytest.fixture
async def duckdns(
    start_duckdns: StartDuckDns, pebble: PebbleServer
) -> tuple[FakeDuckDns, str]:
    """A DuckDNS stand-in for the session's Pebble, and its URL."""
    return await start_duckdns(pebble, ["myhome", "cabin", "refused"])


@pytest.fixture
def allowed_tmp_path(hass: HomeAssistant, tmp_path: Path) -> Path:
    """``tmp_path`` in ``allowlist_external_dirs``: certificates may be written there."""
    hass.config.allowlist_external_dirs.add(str(tmp_path))
    return tmp_path


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


@pytest.fixture
async def pebble_entry(
    hass: HomeAssistant,
    duckdns: tuple[FakeDuckDns, str],
    pebble: PebbleServer,
    ssl_dir: Path,
) -> MockConfigEntry:
    """An entry set up to get its certificate from Pebble into ``ssl_dir``."""
    _, url = duckdns
    return await setup_duckdns_entry(hass, url, pebble_options(pebble, ssl_dir))


@pytest.fixture(scope="session")
def pebble() -> Iterator[PebbleServer]:
    """A Pebble + challtestsrv pair shared by the whole session."""
    with PebbleServer(domain_blocklist=(*DEFAULT_BLOCKLIST, REFUSED_NAME)) as server:
        yield server


@pytest.fixture
async def delegated(pebble: PebbleServer) -> AsyncIterator[None]:
    """``_acme-challenge.home.…`` delegates to myhome.duckdns.org; removed after."""
    await pebble.set_cname(RECORD, TARGET)
    yield
    await pebble.clear_cname(RECORD)


@pytest.fixture(scope="session")
def pebble_eab() -> Iterator[PebbleServer]:
    """A Pebble that requires External Account Binding (keys: DEFAULT_EAB_KEYS)."""
    with PebbleServer(eab_required=True) as server:
        yield server


@pytest.fixture
def router_config() -> RouterConfig:
    """The home router's miniupnpd configuration; parametrize to change it."""
    return RouterConfig()


@pytest.fixture
def home_router(
    socket_enabled: None, tmp_path: Path, router_config: RouterConfig
) -> Iterator[HomeNetwork]:
    """Debian's miniupnpd as the home router, in network namespaces of the test's own."""
    if reason := miniupnpd_available():
        pytest.skip(reason)
    with home_network(tmp_path / "home", router_config) as network:
        yield network


@pytest.fixture
def in_lan(home_router: HomeNetwork) -> Iterator[HomeNetwork]:
    """The test runs on the home's LAN host: the sockets it makes are that host's.

    Only the test's own thread moves: executor threads that already exist
    stay outside (and are refused the network's addresses), so blocking
    calls that need the LAN run in the test's thread or a `NamespaceLoop`.
    """
    with home_router.lan.entered():
        yield home_router


@pytest.fixture
async def ipv6_home(
    in_lan: HomeNetwork,
    hass: HomeAssistant,
    start_duckdns: StartDuckDns,
    fake_ca: FakeCa,
    tmp_path: Path,
) -> AsyncIterator[Ipv6Home]:
    """Home Assistant on the LAN host behind miniupnpd, the router in its SSDP
    cache at its IPv4 and IPv6 locations; DuckDNS saw a shared IPv4 address."""
    duckdns, url = await start_duckdns(None)
    duckdns.detected_ipv4 = SHARED_IPV4
    hass.config.components.add("ssdp")
    seen = router_seen_at(await router_udn(hass), LOCATION, LOCATION6)
    with on_the_lan(in_lan), ssdp_sees(seen):
        home = Ipv6Home(hass, in_lan, url, tmp_path, seen)
        yield home
        if home.entry is not None and home.entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(home.entry.entry_id)


@pytest.fixture
def ticking() -> Generator[Any]:
    """Time travel that keeps the clock running.

    Talking to a real CA needs real waits (polling with Retry-After), which a
    stopped clock would never finish.
    """
    with freeze_time(dt_util.utcnow(), tick=True) as frozen:
        yield frozen


@pytest.fixture
def fake_ca() -> Generator[FakeCa]:
    """Patch the manager's order and ARI with a fake CA (90-day certificates)."""
    ca = FakeCa(timedelta(days=90))

    async def issue(
        self: CertificateManager, current: Any, *, replaces: bool = True
    ) -> Any:
        return await ca.issue(self, current, replaces)

    async def renewal_info(self: CertificateManager, current: Any) -> Any:
        return await ca.renewal_info(current)

    with (
        patch.object(CertificateManager, "async_order", issue),
        patch.object(CertificateManager, "async_renewal_info", renewal_info),
    ):
        yield ca


# Registry entry fields that not every supported Home Assistant version has.
REGISTRY_FIELDS_SINCE_2026_11 = ("compat_name",)
SNAPSHOT_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def assert_platform_snapshot(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    entity_registry: er.EntityRegistry,
    freezer: FrozenDateTimeFactory,
    fake_ca: FakeCa,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
    mock_duckdns: AiohttpClientMocker,
) -> Callable[[Platform], Awaitable[None]]:
    """Set up an entry managing a 30-day-old certificate; snapshot one platform.

    Like core's ``snapshot_platform``, except that the certificate's file path
    (a per-test temporary directory) is left out of the states, and registry
    fields that only newer Home Assistant versions have are left out.
    """

    async def check(platform: Platform) -> None:
        freezer.move_to(SNAPSHOT_TIME)
        cert, key = certs.issue(
            DOMAINS,
            not_before=SNAPSHOT_TIME - timedelta(days=30),
            not_after=SNAPSHOT_TIME + timedelta(days=60),
            serial=0x5A5A5A5A,
        ).write(tmp_path)
        entry = MockConfigEntry(
            domain=DOMAIN,
            entry_id="01JSNAPSHOTENTRY00000000000",
            title=DOMAINS[0],
            unique_id=DOMAINS[0],
            data={CONF_DOMAINS: DOMAINS, CONF_TOKEN: TOKEN},
            options=managed_options(cert, key),
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=True)
        # The first renewal check (within a minute of start) knows the due time.
        await advance(
            hass,
            freezer,
            timedelta(seconds=FIRST_CHECK_DELAY[1]),
            background=True,
        )

        entries = [
            entity_entry
            for entity_entry in er.async_entries_for_config_entry(
                entity_registry, entry.entry_id
            )
            if entity_entry.domain == platform
        ]
        assert entries
        for entity_entry in entries:
            assert entity_entry == snapshot(
                name=f"{entity_entry.entity_id}-entry",
                exclude=props(*REGISTRY_FIELDS_SINCE_2026_11),
            )
            assert hass.states.get(entity_entry.entity_id) == snapshot(
                name=f"{entity_entry.entity_id}-state", exclude=props("path")
            )

    return check


@pytest.fixture
async def home(hass: HomeAssistant, start_duckdns: StartDuckDns) -> AsyncIterator[Home]:
    """DuckDNS sees 203.0.113.7; the router (async_upnp_client's IGD) too."""
    async with home_with(hass, start_duckdns, FakeIgd()) as home:
        yield home


@pytest.fixture
async def router_home(
    hass: HomeAssistant, start_duckdns: StartDuckDns
) -> AsyncIterator[Home]:
    """DuckDNS sees 203.0.113.7; the router is a FRITZ!Box on PPPoE with it."""
    async with home_with(hass, start_duckdns, FakeRouter(fritzbox())) as home:
        yield home
