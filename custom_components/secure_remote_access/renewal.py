"""The renewal coordinator: the one owner of an entry's renewal state.

It alone decides when the certificate is renewed (ARI for *this* serial, the
lifetime rule, the emergency floor, backoff from when the last attempt
*ended*, the CA's Retry-After) and keeps one persisted state that entities,
the action, diagnostics and Repairs read. The certificate manager it drives
holds no state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
import random
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .certificate import (
    CertificateDelegationError,
    CertificateManager,
    CertificateRenewalError,
    CurrentCertificate,
)
from .const import DOMAIN, EVENT_CERTIFICATE_RENEWED, LOGGER
from .models import SecureRemoteAccessConfigEntry
from .protocol.acme import AcmeError, IssuedCertificate
from .protocol.schedule import RenewalReason, decide, moment_in_window, next_retry
from .served import async_swap_after_renewal

STORAGE_VERSION: Final = 1
# At least two checks a day, at jittered times.
CHECK_INTERVAL: Final = timedelta(hours=12)
CHECK_JITTER: Final = timedelta(hours=1)
FIRST_CHECK_DELAY: Final = (10.0, 60.0)
# Ask the CA for its ARI window at most this often unless it says otherwise.
ARI_DEFAULT_POLL: Final = timedelta(hours=6)
ARI_MIN_POLL: Final = timedelta(minutes=1)
ARI_MAX_POLL: Final = timedelta(days=1)


class RenewalResult:
    """States of the last renewal result sensor."""

    RENEWED: Final = "renewed"
    NOT_DUE: Final = "not_due"
    FAILED: Final = "failed"
    OPTIONS: Final = [RENEWED, NOT_DUE, FAILED]


@dataclass(frozen=True, slots=True)
class RenewalOutcome:
    """What a renewal attempt did; also the action's response and the event."""

    renewed: bool
    reason: str
    names: tuple[str, ...]
    not_after: datetime | None
    serial: str | None
    profile: str | None

    def as_response(self) -> dict[str, Any]:
        """The renew_certificate action's response."""
        return {
            "renewed": self.renewed,
            "reason": self.reason,
            "names": list(self.names),
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "serial": self.serial,
            "profile": self.profile,
        }


@dataclass(frozen=True, slots=True)
class RenewalState:
    """Everything renewal knows, persisted across restarts.

    The ARI window (``ari_start`` .. ``ari_end``, the moment ``renew_at``
    picked in it and when to ask again) belongs to the certificate
    ``ari_serial``; for any other certificate it is ignored. ``next_attempt``
    is when a failed attempt is retried (``failed_serial`` is the certificate
    that was on disk then), ``retry_after`` the CA's own "not before" time:
    no request is sent to the CA before it.
    """

    failures: int = 0
    failed_serial: str | None = None
    next_attempt: datetime | None = None
    retry_after: datetime | None = None
    last_result: str | None = None
    last_error: str | None = None
    last_check: datetime | None = None
    due_at: datetime | None = None
    ari_serial: str | None = None
    ari_start: datetime | None = None
    ari_end: datetime | None = None
    renew_at: datetime | None = None
    ari_next_poll: datetime | None = None
    last_outcome: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Serialisable form for storage."""
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RenewalState:
        """Read stored state; unknown or broken values fall back to defaults."""
        if not isinstance(data, dict):
            return cls()
        values: dict[str, Any] = {}
        for key in cls.__dataclass_fields__:
            value = data.get(key)
            if key in _DATETIME_FIELDS:
                value = (
                    dt_util.parse_datetime(value) if isinstance(value, str) else None
                )
            elif key == "failures":
                value = value if isinstance(value, int) and value >= 0 else None
            elif key == "last_outcome":
                value = value if isinstance(value, dict) else None
            elif value is not None and not isinstance(value, str):
                value = None
            if value is not None:
                values[key] = value
        return cls(**values)

    def ari_moment(self, serial: str | None) -> datetime | None:
        """The moment picked in the ARI window, when it belongs to ``serial``."""
        if serial is None or serial != self.ari_serial:
            return None
        return self.renew_at

    def not_before(self) -> datetime | None:
        """The earliest time the next automatic attempt may run."""
        moments = [self.retry_after]
        if self.failures:
            moments.append(self.next_attempt)
        present = [moment for moment in moments if moment is not None]
        return max(present) if present else None

    @property
    def next_renewal(self) -> datetime | None:
        """When the certificate will be renewed (or retried) next."""
        if self.failures and self.next_attempt is not None:
            return self.next_attempt
        return self.due_at


_DATETIME_FIELDS: Final = {
    "next_attempt",
    "retry_after",
    "last_check",
    "due_at",
    "ari_start",
    "ari_end",
    "renew_at",
    "ari_next_poll",
}
_NO_ARI: Final[dict[str, Any]] = {
    "ari_serial": None,
    "ari_start": None,
    "ari_end": None,
    "renew_at": None,
}


def renewal_failed_issue_id(entry_id: str) -> str:
    """The Repairs issue raised while renewals of an entry fail."""
    return f"renewal_failed_{entry_id}"


def delegation_issue_id(entry_id: str) -> str:
    """The Repairs issue raised while a CNAME delegation of an entry is broken."""
    return f"cname_delegation_broken_{entry_id}"


class RenewalCoordinator:
    """Decides when an entry's certificate is renewed and runs the renewals."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        manager: CertificateManager,
    ) -> None:
        """Bind the coordinator to its entry's certificate manager."""
        self.hass = hass
        self.entry = entry
        self.entry_id = entry.entry_id
        self.manager = manager
        self.state = RenewalState()
        self.next_check: datetime | None = None
        self._store: Store[dict[str, Any]] = Store(
            hass,
            STORAGE_VERSION,
            f"{DOMAIN}.renewal_{entry.entry_id}",
            atomic_writes=True,
        )
        self._lock = asyncio.Lock()
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._unsub_started: CALLBACK_TYPE | None = None
        self._listeners: list[Callable[[], None]] = []
        self._renewed_listeners: list[Callable[[RenewalOutcome], None]] = []
        self._rng = random.Random()
        self._stopped = False
        self._unexpected_logged = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def next_renewal(self) -> datetime | None:
        """When the certificate is renewed (or retried) next.

        Before the first check knows a due time (no certificate yet), the
        time of that first check, when the first certificate is obtained.
        """
        return self.state.next_renewal or self.next_check

    # --- life cycle -------------------------------------------------------------

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call ``listener`` whenever the state changes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @callback
    def async_on_renewed(
        self, listener: Callable[[RenewalOutcome], None]
    ) -> CALLBACK_TYPE:
        """Call ``listener`` after every renewal that wrote a new certificate."""
        self._renewed_listeners.append(listener)
        return lambda: self._renewed_listeners.remove(listener)

    async def async_start(self) -> None:
        """Load the stored state and schedule the first check once HA has started."""
        self.state = RenewalState.from_json(await self._store.async_load())
        self._unsub_started = async_at_started(self.hass, self._async_started)

    @callback
    def async_stop(self) -> None:
        """Cancel every timer and a running attempt (its TXT value is cleared).

        Home Assistant then waits for the cancelled attempt before the entry
        is set up again, so two runs never overlap.
        """
        self._stopped = True
        if self._unsub_started is not None:
            self._unsub_started()
            self._unsub_started = None
        self._cancel_timer()
        for task in list(self._tasks):
            task.cancel(f"{DOMAIN} entry unloading")

    async def _async_started(self, _hass: HomeAssistant) -> None:
        self._unsub_started = None
        first = dt_util.utcnow() + timedelta(
            seconds=self._rng.uniform(*FIRST_CHECK_DELAY)
        )
        if (not_before := self.state.not_before()) is not None:
            first = max(first, not_before)
        self._schedule(first)

    # --- running ----------------------------------------------------------------

    async def async_run(self, force: bool = False) -> RenewalOutcome:
        """Renew now when due (or forced): the one path for action and repairs.

        Runs as a task of the entry, so that unloading the entry cancels it.
        """
        task = self._start(self._async_attempt(force), f"{DOMAIN} renewal")
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            raise CertificateRenewalError(
                "cancelled", translation_key="renewal_cancelled"
            ) from None

    @callback
    def _async_timer(self, _now: datetime) -> None:
        self._unsub_timer = None
        if self._stopped:
            return
        self._start(self._async_scheduled_check(), f"{DOMAIN} renewal check")

    def _start[T](self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a task of the entry that unloading cancels."""
        task = self.entry.async_create_task(self.hass, coro, name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _async_scheduled_check(self) -> None:
        not_before = self.state.not_before()
        if not_before is not None and dt_util.utcnow() < not_before:
            self._schedule(not_before)
            return
        try:
            await self._async_attempt(force=False)
        except CertificateRenewalError:
            return  # recorded, shown and rescheduled by the attempt

    async def _async_attempt(self, force: bool) -> RenewalOutcome:
        """One check (and renewal when due); every failure is recorded, then raised."""
        async with self._lock:
            current: CurrentCertificate | None = None
            try:
                current = await self.manager.async_current()
                return await self._async_check_and_renew(current, force)
            except CertificateRenewalError as err:
                if err.translation_key != "renewal_waiting":
                    await self._async_failed(err, current)
                raise
            except Exception as err:
                detail = f"unexpected error ({type(err).__name__}); see the log"
                if not self._unexpected_logged:
                    LOGGER.exception(
                        "Unexpected error while renewing the certificate for %s",
                        ", ".join(self.manager.settings.names),
                    )
                    self._unexpected_logged = True
                failure = CertificateRenewalError(detail)
                await self._async_failed(failure, current)
                raise failure from err
            finally:
                self._schedule(self._next_check_time(dt_util.utcnow()))

    async def _async_check_and_renew(
        self, current: CurrentCertificate | None, force: bool
    ) -> RenewalOutcome:
        now = dt_util.utcnow()
        waiting = self.state.retry_after is not None and now < self.state.retry_after
        if current is not None and not waiting:
            await self._async_refresh_ari(now, current)
        decision = await self.manager.async_decide(
            current,
            renew_at=self.state.ari_moment(current.serial if current else None),
            now=now,
        )
        reason = decision.reason
        due = decision.due
        if force:
            due, reason = True, RenewalReason.FORCED
        elif not due and self.state.failures and not self._failure_is_over(current):
            due, reason = True, RenewalReason.RETRY
        if due and waiting:
            assert self.state.retry_after is not None
            raise CertificateRenewalError(
                "waiting",
                translation_key="renewal_waiting",
                placeholders={
                    "until": dt_util.as_local(self.state.retry_after).strftime(
                        "%Y-%m-%d %H:%M"
                    )
                },
            )
        if not due:
            await self._async_sync_delegation_issue(renewed=False)
            outcome = RenewalOutcome(
                renewed=False,
                reason=reason,
                names=self.manager.settings.names,
                not_after=current.info.not_after if current else None,
                serial=current.serial if current else None,
                profile=self.manager.settings.profile,
            )
            await self._async_succeeded(outcome, due_at=decision.due_at)
            return outcome
        issued = await self.manager.async_issue(
            current, replaces=self.state.failures == 0
        )
        return await self._async_renewed(issued, reason)

    def _failure_is_over(self, current: CurrentCertificate | None) -> bool:
        """A new certificate arrived since the failure (written before a crash, by hand)."""
        serial = current.serial if current else None
        return serial is not None and serial != self.state.failed_serial

    async def _async_renewed(
        self, issued: IssuedCertificate, reason: str
    ) -> RenewalOutcome:
        outcome = RenewalOutcome(
            renewed=True,
            reason=reason,
            names=issued.names,
            not_after=issued.not_after,
            serial=issued.serial_hex,
            profile=issued.profile,
        )
        ended = dt_util.utcnow()
        due_at = decide(ended, issued.not_before, issued.not_after).due_at
        # The old certificate's ARI window must never apply to the new one.
        await self._async_update(**_NO_ARI, ari_next_poll=None)
        await self._async_succeeded(outcome, due_at=due_at)
        self.hass.bus.async_fire(
            EVENT_CERTIFICATE_RENEWED,
            {"config_entry_id": self.entry_id, **outcome.as_response()},
        )
        ir.async_delete_issue(self.hass, DOMAIN, delegation_issue_id(self.entry_id))
        for listener in list(self._renewed_listeners):
            listener(outcome)
        settings = self.manager.settings
        await async_swap_after_renewal(
            self.hass, settings.certificate_path, settings.private_key_path
        )
        if (current := await self.manager.async_current()) is not None:
            await self._async_refresh_ari(dt_util.utcnow(), current)
        return outcome

    async def _async_succeeded(
        self, outcome: RenewalOutcome, due_at: datetime | None
    ) -> None:
        if self.state.failures:
            LOGGER.info(
                "Certificate renewal for %s works again",
                ", ".join(self.manager.settings.names),
            )
        self._unexpected_logged = False
        ir.async_delete_issue(self.hass, DOMAIN, renewal_failed_issue_id(self.entry_id))
        await self._async_update(
            failures=0,
            failed_serial=None,
            next_attempt=None,
            retry_after=None,
            last_result=RenewalResult.RENEWED
            if outcome.renewed
            else RenewalResult.NOT_DUE,
            last_error=None,
            last_check=dt_util.utcnow(),
            due_at=due_at,
            last_outcome=outcome.as_response(),
        )

    async def _async_failed(
        self, err: CertificateRenewalError, current: CurrentCertificate | None
    ) -> None:
        """Count, persist and show a failure; the retry counts from now (its end)."""
        ended = dt_util.utcnow()
        failures = self.state.failures + 1
        lifetime = current.info.not_after - current.info.not_before if current else None
        retry = next_retry(ended, failures, err.retry_after, lifetime)
        retry_after = max(
            (
                moment
                for moment in (err.retry_after, self.state.retry_after)
                if moment is not None and moment > ended
            ),
            default=None,
        )
        await self._async_update(
            failures=failures,
            failed_serial=current.serial if current else None,
            next_attempt=retry if retry_after is None else max(retry, retry_after),
            retry_after=retry_after,
            last_result=RenewalResult.FAILED,
            last_error=err.detail,
            last_check=ended,
        )
        retry = max(retry, retry_after) if retry_after else retry
        if isinstance(err, CertificateDelegationError):
            # The delegation issue says exactly what to do; no second issue.
            ir.async_delete_issue(
                self.hass, DOMAIN, renewal_failed_issue_id(self.entry_id)
            )
            self._raise_delegation_issue(err)
        else:
            ir.async_delete_issue(self.hass, DOMAIN, delegation_issue_id(self.entry_id))
            self._raise_failure_issue(err.detail, retry)
        log = LOGGER.warning if failures == 1 else LOGGER.debug
        log(
            "Certificate renewal failed (%d in a row), next attempt at %s: %s",
            failures,
            retry.isoformat(),
            err.detail,
        )

    async def _async_refresh_ari(
        self, now: datetime, current: CurrentCertificate
    ) -> None:
        """Ask the CA for the renewal window of ``current`` when it is time to."""
        state = self.state
        same = state.ari_serial == current.serial
        if same and state.ari_next_poll is not None and now < state.ari_next_poll:
            return
        try:
            info = await self.manager.async_renewal_info(current)
        except (AcmeError, OSError, ValueError) as err:
            LOGGER.debug("Renewal information not available: %s", err)
            changes: dict[str, Any] = {} if same else dict(_NO_ARI)
            await self._async_update(**changes, ari_next_poll=now + ARI_DEFAULT_POLL)
            return
        if info is None:
            await self._async_update(**_NO_ARI, ari_next_poll=now + ARI_MAX_POLL)
            return
        poll = ARI_DEFAULT_POLL
        if info.retry_after is not None:
            poll = min(max(info.retry_after - now, ARI_MIN_POLL), ARI_MAX_POLL)
        renew_at = state.renew_at
        if (
            not same
            or state.ari_start != info.start
            or state.ari_end != info.end
            or renew_at is None
        ):
            renew_at = moment_in_window(info.start, info.end, self._rng)
            LOGGER.debug(
                "CA suggests renewing %s between %s and %s; picked %s",
                current.serial,
                info.start,
                info.end,
                renew_at,
            )
        await self._async_update(
            ari_serial=current.serial,
            ari_start=info.start,
            ari_end=info.end,
            renew_at=renew_at,
            ari_next_poll=now + poll,
        )

    # --- scheduling ---------------------------------------------------------------

    def _next_check_time(self, now: datetime) -> datetime:
        state = self.state
        if state.failures and state.next_attempt is not None:
            when = state.next_attempt
        else:
            jitter = self._rng.uniform(0, CHECK_JITTER.total_seconds())
            candidates = [now + CHECK_INTERVAL - timedelta(seconds=jitter)]
            candidates.extend(
                moment
                for moment in (state.due_at, state.ari_next_poll)
                if moment is not None and moment > now
            )
            when = min(candidates)
        if state.retry_after is not None:
            when = max(when, state.retry_after)
        return when

    def _schedule(self, when: datetime) -> None:
        if self._stopped:
            return
        self._cancel_timer()
        self._unsub_timer = async_track_point_in_utc_time(
            self.hass, self._async_timer, when
        )
        self.next_check = when
        self._notify()

    def _cancel_timer(self) -> None:
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None

    # --- Repairs --------------------------------------------------------------------

    def _raise_failure_issue(self, detail: str, retry: datetime) -> None:
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            renewal_failed_issue_id(self.entry_id),
            is_fixable=True,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="renewal_failed",
            translation_placeholders={
                "names": ", ".join(self.manager.settings.names),
                "detail": detail,
                "next_attempt": dt_util.as_local(retry).strftime("%Y-%m-%d %H:%M"),
            },
            data={"entry_id": self.entry_id},
        )

    async def _async_sync_delegation_issue(self, renewed: bool) -> None:
        """After a run that did not fail: check the delegations, sync the issue.

        A renewal checked them right before its order. A run that was not due
        checks them too, so that a broken record shows well before the
        certificate needs it, and a fixed one clears the issue.
        """
        if not renewed and self.manager.settings.extra_names:
            try:
                await self.manager.async_check_delegations()
            except CertificateDelegationError as err:
                self._raise_delegation_issue(err)
                return
        ir.async_delete_issue(self.hass, DOMAIN, delegation_issue_id(self.entry_id))

    def _raise_delegation_issue(self, err: CertificateDelegationError) -> None:
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            delegation_issue_id(self.entry_id),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="cname_delegation_broken",
            translation_placeholders={
                "record": err.record,
                "target": err.target,
                "records": ", ".join(err.records),
            },
        )

    # --- state ------------------------------------------------------------------------

    async def _async_update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        await self._store.async_save(self.state.to_json())
        self._notify()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()


async def async_remove_renewal_state(hass: HomeAssistant, entry_id: str) -> None:
    """Delete an entry's stored renewal state."""
    store: Store[dict[str, Any]] = Store(
        hass, STORAGE_VERSION, f"{DOMAIN}.renewal_{entry_id}"
    )
    await store.async_remove()
