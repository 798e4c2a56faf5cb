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
from dataclasses import asdict, replace
from datetime import datetime, timedelta
import random
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.start import async_at_started
from homeassistant.util import dt as dt_util

from .certificate import (
    CertificateDelegationError,
    CertificateManager,
    CertificateRenewalError,
    CurrentCertificate,
)
from .certificate_settings import OrderedWith
from .const import DOMAIN, EVENT_CERTIFICATE_RENEWED, LOGGER
from .helpers import cancel_callback
from .issues import (
    async_delete_delegation_issue,
    async_delete_renewal_failed_issue,
    async_raise_delegation_broken,
    async_raise_renewal_issue,
)
from .models import SecureRemoteAccessConfigEntry
from .protocol.acme import IssuedCertificate
from .protocol.schedule import UNFIT_REASONS, RenewalReason, decide, next_retry
from .renewal_ari import async_ari_changes
from .renewal_state import (
    _NO_ARI,
    _NO_BACKOFF,
    CHECK_INTERVAL,
    IssuedStash,
    RenewalOutcome,
    RenewalResult,
    RenewalState,
    conditions_digest,
    renewal_store,
)
from .served import async_swap_after_renewal

__all__ = ["RenewalCoordinator", "RenewalOutcome", "RenewalResult", "RenewalState"]

CHECK_JITTER_SECONDS: Final = 3600.0
# Spreads the first check of a fitting certificate (many homes restart at once).
FIRST_CHECK_DELAY: Final = (10.0, 60.0)


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
        self._store = renewal_store(hass, entry.entry_id)
        self._stash = IssuedStash(hass, entry.entry_id)
        self._ordering = False
        self._lock = asyncio.Lock()
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._unsub_started: CALLBACK_TYPE | None = None
        self._listeners: list[Callable[[], None]] = []
        self._renewed_listeners: list[Callable[[RenewalOutcome], None]] = []
        self._rng = random.Random()
        self._unfit = False
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

    async def async_load(self) -> None:
        """Load the state; changed settings start the backoff over.

        A pair that is missing or does not fit the settings is due now.
        """
        self.state = RenewalState.from_json(await self._store.async_load())
        settings = self.manager.settings
        conditions = conditions_digest(settings, self.entry.data)
        changes = self.state.settings_changes(conditions, settings) or {}
        try:
            current = await self.manager.async_current()
            serial = current.serial if current else None
            decision = await self.manager.async_decide(
                current, ordered_with=self.state.ordered_with(serial)
            )
            self._unfit = decision.reason in UNFIT_REASONS
        except Exception:  # noqa: BLE001 - the first check reports it
            self._unfit = False
        if self._unfit:
            changes["due_at"] = dt_util.utcnow()
        if changes:
            await self._async_update(**changes)

    @callback
    def async_start(self) -> None:
        """Schedule the first check once Home Assistant has started."""
        self._unsub_started = async_at_started(self.hass, self._async_started)

    @callback
    def async_stop(self) -> None:
        """Cancel every timer and a running attempt (its TXT value is cleared).

        Home Assistant then waits for the cancelled attempt before the entry
        is set up again, so two runs never overlap.
        """
        self._stopped = True
        cancel_callback(self._unsub_started)
        self._unsub_started = None
        self._cancel_timer()
        for task in list(self._tasks):
            task.cancel(f"{DOMAIN} entry unloading")

    async def _async_started(self, _hass: HomeAssistant) -> None:
        """The first check: at once for a pair to obtain, else within a minute."""
        self._unsub_started = None
        now = dt_util.utcnow()
        delay = 0.0 if self._unfit else self._rng.uniform(*FIRST_CHECK_DELAY)
        first = now + timedelta(seconds=delay)
        if (not_before := self.state.sanitized(now).not_before()) is not None:
            first = min(max(first, not_before), now + CHECK_INTERVAL)
        self._schedule(first)

    # --- running ----------------------------------------------------------------

    async def async_run(self, force: bool = False) -> RenewalOutcome:
        """Renew now when due (or forced): the one path for action and repairs.

        Runs as a task of the entry, so that unloading the entry cancels it.
        """
        task = self._start(self._async_attempt(force), f"{DOMAIN} renewal")
        try:
            outcome = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            raise CertificateRenewalError(
                "cancelled", translation_key="renewal_cancelled"
            ) from None
        assert outcome is not None
        return outcome

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
        try:
            await self._async_attempt(force=False, scheduled=True)
        except CertificateRenewalError:
            return  # recorded, shown and rescheduled by the attempt

    async def _async_attempt(
        self, force: bool, scheduled: bool = False
    ) -> RenewalOutcome | None:
        """One check (and renewal when due); every failure is recorded, then raised.

        A scheduled check that finds the backoff not over (an action failed
        while it waited for the lock) only reschedules: it returns None.
        """
        async with self._lock:
            current: CurrentCertificate | None = None
            try:
                now = dt_util.utcnow()
                if (sane := self.state.sanitized(now)) is not self.state:
                    LOGGER.warning(
                        "Renewal times far in the future reset: the clock jumped"
                    )
                    await self._async_update(**asdict(sane))
                not_before = self.state.not_before()
                if scheduled and not_before is not None and now < not_before:
                    return None
                self._ordering = False
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
                jitter = timedelta(seconds=self._rng.uniform(0, CHECK_JITTER_SECONDS))
                self._schedule(self.state.next_check_time(dt_util.utcnow(), jitter))

    async def _async_check_and_renew(
        self, current: CurrentCertificate | None, force: bool
    ) -> RenewalOutcome:
        now = dt_util.utcnow()
        waiting = self.state.retry_after is not None and now < self.state.retry_after
        if current is not None and not waiting:
            await self._async_refresh_ari(now, current)
        serial = current.serial if current else None
        decision = await self.manager.async_decide(
            current,
            ordered_with=self.state.ordered_with(serial),
            renew_at=self.state.ari_moment(serial),
            now=now,
        )
        reason = decision.reason
        due = decision.due
        if force:
            due, reason = True, RenewalReason.FORCED
        elif (
            not due
            and self.state.failures
            and self.state.failed_order
            and not self._failure_is_over(current)
        ):
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
            if await self._stash.async_load() is not None:
                # The failure it was kept for is over (a newer pair arrived).
                await self._stash.async_clear()
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
        self._ordering = True
        settings = self.manager.settings
        if (issued := await self._stash.async_usable(settings, current)) is None:
            issued = await self.manager.async_order(
                current, replaces=self.state.failures == 0
            )
            await self._stash.async_keep(issued, OrderedWith.of(settings))
        await self.manager.async_write(issued)
        await self._stash.async_clear()  # the key is not kept a moment longer
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
            validation_method=issued.validation_method,
            validation_note=issued.validation_note,
            validation_detail=issued.validation_detail,
        )
        ended = dt_util.utcnow()
        due_at = decide(ended, issued.not_before, issued.not_after).due_at
        # The old certificate's ARI window must never apply to the new one.
        settings = self.manager.settings
        await self._async_update(
            **_NO_ARI,
            ari_next_poll=None,
            ordered_serial=issued.serial_hex,
            ordered_directory=settings.directory_url,
            ordered_profile=settings.profile,
        )
        await self._async_succeeded(outcome, due_at=due_at)
        self.hass.bus.async_fire(
            EVENT_CERTIFICATE_RENEWED,
            {"config_entry_id": self.entry_id, **outcome.as_response()},
        )
        async_delete_delegation_issue(self.hass, self.entry_id)
        for listener in list(self._renewed_listeners):
            listener(outcome)
        try:
            await async_swap_after_renewal(
                self.hass, settings.certificate_path, settings.private_key_path
            )
            if (current := await self.manager.async_current()) is not None:
                await self._async_refresh_ari(dt_util.utcnow(), current)
        except Exception:  # noqa: BLE001 - the renewal itself succeeded
            # The hourly served-certificate check swaps later; ARI is polled again.
            LOGGER.exception("After renewing %s", ", ".join(settings.names))
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
        async_delete_renewal_failed_issue(self.hass, self.entry_id)
        retry_after = self.state.retry_after
        if outcome.renewed or (
            retry_after is not None and retry_after <= dt_util.utcnow()
        ):
            retry_after = None
        await self._async_update(
            failures=0,
            failed_serial=None,
            failed_order=False,
            next_attempt=None,
            retry_after=retry_after,
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
        # A new account changed the conditions: the back-off starts again.
        failures = 1 if self.manager.account_replaced else self.state.failures + 1
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
            failed_order=self._ordering,
            next_attempt=retry if retry_after is None else max(retry, retry_after),
            retry_after=retry_after,
            last_result=RenewalResult.FAILED,
            last_error=err.detail,
            last_check=ended,
        )
        retry = max(retry, retry_after) if retry_after else retry
        async_raise_renewal_issue(
            self.hass,
            self.entry_id,
            err,
            self.manager.settings.names,
            retry,
            delegations_verified=self.manager.delegations_verified,
        )
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
        changes = await async_ari_changes(
            self.manager, self.state, current, now, self._rng
        )
        if changes is not None:
            await self._async_update(**changes)

    async def async_conditions_changed(self) -> None:
        """What the last failures depended on changed (a new account, a fix):
        the failure back-off starts again and a check runs at once.

        The CA's own Retry-After still holds.
        """
        if self.state.failures:
            await self._async_update(**_NO_BACKOFF)
        when = dt_util.utcnow()
        if (retry_after := self.state.retry_after) is not None and retry_after > when:
            when = retry_after
        self._schedule(when)

    # --- scheduling ---------------------------------------------------------------

    def _schedule(self, when: datetime) -> None:
        if self._stopped:
            return
        self._cancel_timer()
        self.next_check = when
        if when > dt_util.utcnow():
            self._unsub_timer = async_track_point_in_utc_time(
                self.hass, self._async_timer, when
            )
        else:  # at once, as a task Home Assistant waits for: no timer hop
            self._async_timer(when)
        self._notify()

    def _cancel_timer(self) -> None:
        cancel_callback(self._unsub_timer)
        self._unsub_timer = None

    # --- Repairs --------------------------------------------------------------------

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
                async_raise_delegation_broken(self.hass, self.entry_id, err)
                return
        async_delete_delegation_issue(self.hass, self.entry_id)

    # --- state ------------------------------------------------------------------------

    async def _async_update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)
        await self._store.async_save(self.state.to_json())
        self._notify()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()
