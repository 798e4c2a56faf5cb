"""A simulated year of faults, for 90-day, 45-day and 6-day certificates.

The real scheduler (the entry's renewal coordinator, its timers and the
hourly served-certificate check) runs under Home Assistant's time travel
against a CA stand-in that dates certificates and ARI windows in simulated
time (`tests.fakes.acme_ca`), the DuckDNS stand-in and Home Assistant's
real TLS web server. During the year every kind of fault below is injected
into renewal attempts, a few at a time per renewal window; the test asserts
for the whole year that the certificate never expires, the server never
fails a handshake, no order is placed that was not needed, every failure
is visible (sensor and Repairs) when its attempt ends, and nothing is sent
to the CA before a Retry-After.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
import random
import ssl
import threading
from typing import Any
from unittest.mock import patch

from aiohttp import web
from cryptography import x509
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.http.config import DATA_STORE as HTTP_CONFIG_STORE
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util, ssl as ssl_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.secure_remote_access import (
    certificate as certificate_module,
    renewal as renewal_module,
)
from custom_components.secure_remote_access.const import (
    CONF_ACME_DIRECTORY,
    CONF_CERTIFICATE_PATH,
    CONF_DNS_SERVER,
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_PRIVATE_KEY_PATH,
    DOMAIN,
)
from custom_components.secure_remote_access.protocol import (
    confined as confined_module,
    fileops as fileops_module,
    pairfiles as files_module,
)
from custom_components.secure_remote_access.protocol.schedule import (
    EMERGENCY_FRACTION,
    emergency_renewal_time,
    lifetime_renewal_time,
)
from custom_components.secure_remote_access.protocol.x509 import (
    CertificateError,
    read_matching_pair,
)
from custom_components.secure_remote_access.served import build_server_context
from tests.common import TOKEN
from tests.fakes import certs
from tests.fakes.acme_ca import (
    DUPLICATE_LIMIT,
    LATE_EVERY,
    WINDOW,
    Issued,
    OrderRecord,
    SimulatedCa,
    simulated_now,
)
from tests.fakes.duckdns import FakeDuckDns, start_fake_duckdns, stop_fake_duckdns
from tests.fakes.pebble import PebbleServer

from .faulty_os import FaultyOs, Plan

pytestmark = pytest.mark.timeout(600)

NAME = "myhome.duckdns.org"
YEAR = timedelta(days=365)
RESULT = "sensor.myhome_duckdns_org_last_renewal_result"
MAX_STEP = timedelta(hours=12)
DUCKDNS_TIMEOUT = timedelta(seconds=16)
# Faults that make an attempt fail (and so count against the renewal window).
FAILING = (
    "ca_503",
    "ca_500",
    "reset",
    "rate_limited",
    "duckdns_html",
    "duckdns_500",
    "duckdns_hang",
    "txt_overwritten",
)
# Failing faults per renewal window, at most: the window's slack must hold them.
FAILING_PER_WINDOW = {90: 8, 45: 4, 6: 2}
# Another tool copies a certificate without its key, this many days in.
OTHER_TOOL_DAYS = (100.3, 200.1, 300.5)


@dataclass(frozen=True)
class Fault:
    """One fault to inject: its kind, its effect on the attempt, a write step."""

    kind: str
    effect: str
    step: int | None = None


@dataclass
class Attempt:
    """One order the CA accepted or refused at newOrder, and its fault."""

    order: OrderRecord
    fault: str | None


@dataclass
class Tally:
    """What the year counts."""

    faults: int = 0
    orders: int = 0
    unneeded: int = 0
    renewals: int = 0
    expiries: int = 0
    tls_failures: int = 0
    early: int = 0
    invisible: int = 0
    restart_unsafe: int = 0
    stale_served: int = 0
    restarts: int = 0
    kinds: set[str] = field(default_factory=set)


class Year:
    """Drives one profile through a simulated year."""

    def __init__(
        self,
        hass: HomeAssistant,
        freezer: FrozenDateTimeFactory,
        folder: Path,
        pebble: PebbleServer,
        lifetime: timedelta,
    ) -> None:
        """Prepare everything; `start` brings it up."""
        self.hass = hass
        self.freezer = freezer
        self.folder = folder
        self.pebble = pebble
        self.lifetime = lifetime
        self.cert_path = folder / "ssl" / "fullchain.pem"
        self.key_path = folder / "ssl" / "privkey.pem"
        self.rng = random.Random(int(lifetime.total_seconds()))
        self.signal = asyncio.Event()
        self.tally = Tally()
        self.attempts: list[Attempt] = []
        self.checked_orders = 0
        self.seen_serials: set[str] = set()
        self.window_failures = 0
        self.foreign_pending = False
        self.other_tool_events = 0
        self.hangs_handled = 0
        self.duckdns = FakeDuckDns(
            token=TOKEN, domains=["myhome"], challtestsrv_url=pebble.challtestsrv_url
        )
        self.duckdns.on_hang = self.signal.set
        self.ca = SimulatedCa(self.duckdns, lifetime)
        self.ca.faults = self._fault_for
        self.ca.order_needed = self._order_needed
        self.ca.on_hold = self.signal.set
        loop = asyncio.get_running_loop()
        self.faulty_os = FaultyOs(lambda: loop.call_soon_threadsafe(self.signal.set))
        self.queue: list[Fault] = []
        self._queue_lock = threading.Lock()
        self._runners: list[web.AppRunner] = []
        self._patches: list[Any] = []
        self.entry: MockConfigEntry | None = None
        self.start = dt_util.utcnow()
        self._other_tool_times = [
            self.start + timedelta(days=d) for d in OTHER_TOOL_DAYS
        ]

    # --- set-up -----------------------------------------------------------------

    async def async_start(self) -> None:
        """Bring up DuckDNS, the CA, Home Assistant's TLS server and the entry."""
        runner, duckdns_url = await start_fake_duckdns(self.duckdns, access_log=False)
        self._runners.append(runner)
        runner = web.AppRunner(self.ca.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        port = runner.addresses[0][1]
        self.ca.base = f"http://127.0.0.1:{port}"

        # Another client's certificate is there first (and is served).
        now = simulated_now()
        seed = certs.other_pki().intermediate.issue(
            [NAME], not_before=now, not_after=now + self.lifetime
        )
        self.cert_path.parent.mkdir()
        seed.write(self.cert_path.parent)
        self.hass.config.allowlist_external_dirs = {str(self.folder)}
        await self._start_https()

        write = certificate_module.write_certificate_pair

        def counted_write(*args: Any, **kwargs: Any) -> Any:
            self._arm_write_fault()
            with self.faulty_os.writing():
                return write(*args, **kwargs)

        self._patches = [
            patch.object(files_module, "os", self.faulty_os),
            patch.object(fileops_module, "os", self.faulty_os),
            patch.object(confined_module, "os", self.faulty_os),
            patch.object(certificate_module, "write_certificate_pair", counted_write),
            # The coordinators' jitter and ARI picks drawn from the year's seed:
            # the same year every run (a flaky year would be a failing test).
            patch.object(renewal_module, "random", _SeededRandom(self.rng)),
        ]
        for active in self._patches:
            active.start()
        steps, commit = await self.hass.async_add_executor_job(self._count_write_steps)
        self.queue = self._fault_queue(steps, commit)

        self.entry = MockConfigEntry(
            domain=DOMAIN,
            title=NAME,
            unique_id=NAME,
            data={
                CONF_DOMAINS: [NAME],
                CONF_TOKEN: TOKEN,
                CONF_DUCKDNS_URL: duckdns_url,
            },
            options={
                CONF_ACME_DIRECTORY: self.ca.url("dir"),
                CONF_CERTIFICATE_PATH: str(self.cert_path),
                CONF_PRIVATE_KEY_PATH: str(self.key_path),
                CONF_DNS_SERVER: self.pebble.dns_server,
            },
        )
        self.entry.add_to_hass(self.hass)
        assert await self.hass.config_entries.async_setup(self.entry.entry_id)
        await self.settle()

    async def _start_https(self) -> None:
        assert await async_setup_component(
            self.hass,
            "http",
            {
                "http": {
                    "server_host": ["127.0.0.1"],
                    "server_port": _free_port(),
                    "ssl_certificate": str(self.cert_path),
                    "ssl_key": str(self.key_path),
                }
            },
        )
        await self.hass.http.start()
        # The YAML above became a pending trial config: confirm it, as a user
        # would, or Home Assistant reverts it (with a restart) five minutes on.
        await self.hass.data[HTTP_CONFIG_STORE].async_promote_pending()

    def _count_write_steps(self) -> tuple[int, int]:
        """Steps of an install over an existing pair, and the step that commits it."""
        folder = self.folder / "dry-run"
        folder.mkdir()
        first = certs.issue([NAME], key=certs.generate_key(slot=61))
        cert_path, _ = first.write(folder)
        second = certs.issue([NAME], key=certs.generate_key(slot=62))
        with self.faulty_os.writing():
            files_module.write_certificate_pair(
                cert_path,
                folder / "privkey.pem",
                second.fullchain_pem,
                second.key_pem,
                expected_names=[NAME],
                allowed=[self.folder],  # one folder deep, as the real pair
            )
        steps = self.faulty_os.last_steps
        commit = max(
            index
            for index, (name, args) in enumerate(steps)
            if name == "replace" and Path(args[1]).name == cert_path.name
        )
        return len(steps), commit

    def _fault_queue(self, steps: int, commit: int) -> list[Fault]:
        """Every fault kind, and an error and a crash at the steps of a write.

        A fault *fails* the attempt (retried with backoff), *repeats* it (a
        restart orders again) or *ends* it (the certificate is installed
        anyway). The 6-day year meets every step; the longer ones have fewer
        renewal windows than steps of a write, so they meet a sample.
        """
        failing = [Fault("write_error", "fails", step) for step in range(commit + 1)]
        self.rng.shuffle(failing)
        if self.lifetime >= timedelta(days=10):
            low = _renewal_bounds(self.lifetime)[0]
            windows = low - low // LATE_EVERY - 1
            room = windows * FAILING_PER_WINDOW[self.lifetime.days] - len(FAILING)
            failing = failing[:room]
        failing += [Fault(kind, "fails") for kind in FAILING]
        repeating = [Fault("restart_mid_order", "repeats")]
        repeating += [Fault("write_crash", "repeats", step) for step in range(commit)]
        ending = [
            Fault("write_error", "ends", step) for step in range(commit + 1, steps)
        ]
        ending += [Fault("write_crash", "ends", step) for step in range(commit, steps)]
        self.rng.shuffle(ending)
        if self.lifetime >= timedelta(days=10):
            ending = ending[: _renewal_bounds(self.lifetime)[0] - 2]
        queue = [Fault("refuse_replaces", "continues"), *failing, *repeating, *ending]
        self.rng.shuffle(queue)
        # Half the nonces rejected for the whole first renewal.
        return [Fault("bad_nonce", "first"), *queue]

    async def async_stop(self) -> None:
        """Tear everything down."""
        self.faulty_os.resume.set()
        self.ca.release.set()
        if self.entry is not None:
            await self.hass.config_entries.async_unload(self.entry.entry_id)
        await self.hass.http.stop()
        for active in reversed(self._patches):
            active.stop()
        await stop_fake_duckdns(self.duckdns, self._runners[0])
        for runner in self._runners[1:]:
            await runner.cleanup()

    # --- faults -------------------------------------------------------------------

    def _fault_for(self, order: OrderRecord) -> str | None:
        """The CA asks at each newOrder: which fault does this order meet?

        Within a renewal window the faults come in this order: a refused
        ``replaces`` (when the order has one), failing ones up to the
        window's budget, then repeating ones. Faults in writing the files
        are met when the certificate is written (`_arm_write_fault`).
        """
        fault = self._pick(order=order)
        self.attempts.append(Attempt(order, fault.kind if fault else None))
        if fault is not None:
            self._take(fault)
        return fault.kind if fault else None

    def _arm_write_fault(self) -> None:
        """The certificate is about to be written (from a fresh order or one
        kept from a failed write): plan the next fault in writing, if any."""
        with self._queue_lock:
            fault = self._pick(order=None)
            order = self.attempts[-1].order
            self.attempts.append(Attempt(order, fault.kind if fault else None))
            if fault is None:
                return
            self._take(fault)
            assert fault.step is not None
            kind = "error" if fault.kind == "write_error" else "crash"
            self.faulty_os.plan = Plan(fault.step, kind)

    def _take(self, fault: Fault) -> None:
        self.queue.remove(fault)
        self.tally.faults += 1
        self.tally.kinds.add(fault.kind)
        if fault.effect == "fails":
            self.window_failures += 1

    def _pick(self, order: OrderRecord | None) -> Fault | None:
        """The next fault for an order (``order``) or for a write (None)."""
        writing = order is None

        def first(effect: str) -> Fault | None:
            return next(
                (
                    f
                    for f in self.queue
                    if f.effect == effect and (f.step is not None) == writing
                ),
                None,
            )

        if order is not None and (fault := first("first")):
            return fault
        replacing = order is not None and order.replaces is not None
        if replacing and (fault := first("continues")):
            return fault
        if self.window_failures < self._budget() and (fault := first("fails")):
            return fault
        return first("repeats") or first("ends")

    def _budget(self) -> int:
        """Failing faults this window may still take: none while the emergency
        floor is all that stands between the certificate and its expiry."""
        issued = self._issued_on_disk()
        if issued is not None and issued.late:
            return 0
        return FAILING_PER_WINDOW[self.lifetime.days]

    def _issued_on_disk(self) -> Issued | None:
        serial = self._disk_serial()
        return next((i for i in self.ca.issued.values() if i.serial == serial), None)

    def _order_needed(self) -> bool:
        """Whether a client that knows the CA's windows would order now."""
        try:
            pair = read_matching_pair(self.cert_path, self.key_path)
        except CertificateError:
            return True
        info = pair.certificate
        now = simulated_now()
        if not info.is_valid_at(now) or info.missing_names([NAME]):
            return True
        issued = next(
            (i for i in self.ca.issued.values() if i.serial == info.serial_number), None
        )
        if issued is None:
            return now >= lifetime_renewal_time(info.not_before, info.not_after)
        floor = emergency_renewal_time(issued.not_before, issued.not_after)
        return now >= min(issued.window()[0], floor)

    def inject_other_tool(self) -> None:
        """Another tool copies its certificate over ours and not (yet) its key."""
        now = simulated_now()
        other = certs.other_pki().intermediate.issue(
            [NAME],
            key=certs.generate_key(slot=63),
            not_before=now,
            not_after=now + self.lifetime,
        )
        certs.write_file(self.cert_path, other.fullchain_pem)
        self.foreign_pending = True
        self.tally.faults += 1
        self.tally.kinds.add("other_tool")
        self.other_tool_events += 1

    # --- running ------------------------------------------------------------------

    async def settle(self) -> None:
        """Wait until nothing runs, handling hangs, crashes and held orders.

        Handling a signal starts new work (a restarted entry), so the wait
        starts over until one passes without a signal.
        """
        while True:
            waiter = asyncio.ensure_future(
                self.hass.async_block_till_done(wait_background_tasks=True)
            )
            handled = False
            while not waiter.done():
                signal = asyncio.ensure_future(self.signal.wait())
                await asyncio.wait(
                    {waiter, signal}, return_when=asyncio.FIRST_COMPLETED
                )
                signal.cancel()
                if self.signal.is_set():
                    self.signal.clear()
                    handled = True
                    await self._handle_signals()
            await waiter
            if not handled:
                return

    async def _handle_signals(self) -> None:
        if self.duckdns.hanging > self.hangs_handled:
            # DuckDNS holds the request: our client's time-out ends it.
            self.hangs_handled = self.duckdns.hanging
            self.freezer.tick(DUCKDNS_TIMEOUT)
            async_fire_time_changed(self.hass)
        if self.faulty_os.crashed.is_set() or self.ca.holding:
            await self._restart()

    async def _restart(self) -> None:
        """The process died (or was restarted) in the middle of an order."""
        assert self.entry is not None
        assert await self.hass.config_entries.async_unload(self.entry.entry_id)
        if self.faulty_os.crashed.is_set():
            self.faulty_os.unwound.clear()
            self.faulty_os.resume.set()
            await self.hass.async_add_executor_job(self.faulty_os.unwound.wait)
        self.ca.release.set()
        self.tally.restarts += 1
        assert await self.hass.config_entries.async_setup(self.entry.entry_id)

    def _next_stop(self, now: datetime) -> datetime:
        """The next moment anything is due: a check, another tool, the year's end."""
        assert self.entry is not None
        moments = [now + MAX_STEP, self.start + YEAR, *self._other_tool_times]
        if (renewal := self.entry.runtime_data.managed.renewal).next_check is not None:
            moments.append(renewal.next_check)
        return max(min(moments), now + timedelta(seconds=1))

    async def async_run(self) -> None:
        """The year, from the first check to its last day."""
        await self.check()
        while (now := dt_util.utcnow()) < self.start + YEAR:
            if self._other_tool_times and now >= self._other_tool_times[0]:
                self._other_tool_times.pop(0)
                self.inject_other_tool()
            self.freezer.move_to(self._next_stop(now))
            async_fire_time_changed(self.hass)
            await self.settle()
            await self.check()

    # --- checks --------------------------------------------------------------------

    async def check(self) -> None:
        """After every step: served, on disk, visible, nothing early."""
        now = simulated_now()
        presented: x509.Certificate | None = None
        try:
            presented = await _presented_certificate(self.hass)
        except OSError, ssl.SSLError:
            self.tally.tls_failures += 1
        else:
            if (
                not presented.not_valid_before_utc
                <= now
                <= presented.not_valid_after_utc
            ):
                self.tally.expiries += 1
        try:
            pair = await self.hass.async_add_executor_job(
                read_matching_pair, self.cert_path, self.key_path
            )
        except CertificateError:
            if not self.foreign_pending:
                self.tally.restart_unsafe += 1
        else:
            if not pair.certificate.is_valid_at(now):
                self.tally.expiries += 1
            try:
                await self.hass.async_add_executor_job(
                    build_server_context, pair, None, None
                )
            except OSError, ssl.SSLError:
                self.tally.restart_unsafe += 1
            serial = pair.certificate.serial_number
            ours = any(i.serial == serial for i in self.ca.issued.values())
            if ours and serial not in self.seen_serials:
                self.seen_serials.add(serial)
                self.tally.renewals += 1
                self.window_failures = 0
                self.foreign_pending = False
            if (
                presented is not None
                and format(presented.serial_number, "x") != serial
                and pair.certificate.key_matches
            ):
                # A good pair on disk that the running server does not present.
                self.tally.stale_served += 1
        self._check_attempts(self._disk_serial())
        self.tally.early = len(self.ca.early_requests)

    def _disk_serial(self) -> str | None:
        try:
            leaf = x509.load_pem_x509_certificates(self.cert_path.read_bytes())[0]
        except OSError, ValueError:
            return None
        return format(leaf.serial_number, "x")

    def _check_attempts(self, disk_serial: str | None) -> None:
        """The last attempt since the previous check: installed, or visibly failed."""
        assert self.entry is not None
        new = self.attempts[self.checked_orders :]
        self.checked_orders = len(self.attempts)
        if not new:
            return
        last = new[-1]
        order = self.ca.orders.get(last.order.id)
        if (
            order is not None
            and order.certificate is not None
            and self.ca.issued[order.certificate].serial == disk_serial
        ):
            return  # installed
        if last.fault in ("write_crash", "restart_mid_order"):
            return  # the process went away; the restarted entry tries again
        state = self.hass.states.get(RESULT)
        issue = ir.async_get(self.hass).async_get_issue(
            DOMAIN, f"renewal_failed_{self.entry.entry_id}"
        )
        recorded = self.entry.runtime_data.managed.renewal.state.last_check
        if (
            state is None
            or state.state != "failed"
            or issue is None
            # The failure shown must be this attempt's, not an older one's.
            or recorded is None
            or recorded < last.order.placed
        ):
            self.tally.invisible += 1

    def summary(self) -> str:
        """One line for the terminal summary."""
        self.tally.orders = len(self.ca.orders)
        self.tally.unneeded = sum(1 for o in self.ca.orders.values() if not o.needed)
        low, high = _renewal_bounds(self.lifetime)
        high += self.other_tool_events
        tally = self.tally
        return (
            f"year {self.lifetime.days}d: {tally.renewals} renewals (min {low}, max {high}), "
            f"{tally.orders} orders ({tally.unneeded} unneeded), "
            f"{len(self.ca.issued)} certificates issued (at most "
            f"{self.ca.max_issued_in_a_period()} in 7 days), "
            f"{tally.faults} faults injected ({len(tally.kinds)} kinds), "
            f"{tally.restarts} restarts, {tally.expiries} expiries, "
            f"{tally.tls_failures} TLS failures, {tally.stale_served} stale served, "
            f"{tally.restart_unsafe} unsafe restarts, {tally.early} early retries, "
            f"{tally.invisible} invisible failures"
        )


YEAR_START = datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC)


class _SeededRandom:
    """Stands in for the random module: each Random() seeded from ``parent``."""

    def __init__(self, parent: random.Random) -> None:
        self._parent = parent

    def Random(self) -> random.Random:  # noqa: N802 - the module's name
        """A generator seeded from the parent's sequence."""
        return random.Random(self._parent.getrandbits(64))


def _renewal_bounds(lifetime: timedelta) -> tuple[int, int]:
    """Certificates a client following the CA's windows obtains in the year.

    The fewest when it renews at each window's end, the most at its start;
    every LATE_EVERY-th certificate is renewed at the emergency floor.
    """
    seed_due = lifetime / 2 if lifetime < timedelta(days=10) else lifetime * 2 / 3
    floor = 1 - 1 / EMERGENCY_FRACTION
    counts = []
    for fraction in (WINDOW[1], WINDOW[0]):
        moment, count = seed_due, 0
        while moment < YEAR:
            late = count % LATE_EVERY == LATE_EVERY - 1
            count += 1
            moment += lifetime * (floor if late else fraction)
        counts.append(count)
    return counts[0], counts[1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _presented_certificate(hass: HomeAssistant) -> x509.Certificate:
    """The certificate Home Assistant's server presents now (raises on failure)."""
    _, writer = await asyncio.open_connection(
        "127.0.0.1",
        hass.http.server_port,
        ssl=ssl_util.get_default_no_verify_context(),
        server_hostname=NAME,
    )
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.mark.parametrize(
    "lifetime",
    [timedelta(days=90), timedelta(days=45), timedelta(days=6)],
    ids=["90d", "45d", "6d"],
)
async def test_a_year_of_faults(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    tmp_path: Path,
    socket_enabled: None,
    pebble: PebbleServer,
    year_summaries: list[str],
    lifetime: timedelta,
) -> None:
    """Never expired, never a TLS failure, no unneeded order, every failure shown."""
    # asyncio's debug mode records a traceback per callback: most of the
    # year's time, and its slow-callback warnings measure the time travel.
    hass.loop.set_debug(False)
    freezer.move_to(YEAR_START)  # the same year every run
    year = Year(hass, freezer, tmp_path, pebble, lifetime)
    await year.async_start()
    try:
        await year.async_run()
    finally:
        await year.async_stop()
    line = year.summary()
    year_summaries.append(line)
    tally = year.tally
    assert year.queue == [], f"faults never met: {year.queue}"
    assert (tally.expiries, tally.tls_failures, tally.early) == (0, 0, 0), line
    assert (tally.unneeded, tally.invisible, tally.restart_unsafe) == (0, 0, 0), line
    assert tally.stale_served == 0, line
    # Let's Encrypt's duplicate-certificate limit is never reached.
    assert year.ca.max_issued_in_a_period() < DUPLICATE_LIMIT, line
    assert year.ca.duplicate_refusals == 0, line
    low, high = _renewal_bounds(lifetime)
    # Each certificate copied in by another tool needs one renewal more.
    assert tally.renewals <= high + year.other_tool_events, line
    assert tally.renewals >= low - 1, line
