"""Automatic renewal: checks twice a day, follows ARI, retries with backoff."""

from __future__ import annotations

from collections.abc import Callable
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
    RenewalOutcome,
)
from .const import DOMAIN, LOGGER
from .protocol.acme import AcmeError
from .protocol.schedule import moment_in_window, next_retry
from .rotation import async_rotate_after_renewal

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
class RenewalState:
    """What survives a restart: failures, the next attempt and the ARI window."""

    failures: int = 0
    next_attempt: datetime | None = None
    last_result: str | None = None
    last_error: str | None = None
    last_check: datetime | None = None
    due_at: datetime | None = None
    ari_serial: str | None = None
    ari_start: datetime | None = None
    ari_end: datetime | None = None
    renew_at: datetime | None = None
    ari_next_poll: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """Serialisable form for storage."""
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RenewalState:
        """Read stored state; unknown or broken values fall back to defaults."""
        if not data:
            return cls()
        values: dict[str, Any] = {}
        for key in cls.__dataclass_fields__:
            value = data.get(key)
            if key in _DATETIME_FIELDS and isinstance(value, str):
                value = dt_util.parse_datetime(value)
            if value is not None:
                values[key] = value
        return cls(**values)

    @property
    def next_renewal(self) -> datetime | None:
        """When the certificate will be renewed (or retried) next."""
        if self.failures and self.next_attempt is not None:
            return self.next_attempt
        return self.due_at


_DATETIME_FIELDS: Final = {
    "next_attempt",
    "last_check",
    "due_at",
    "ari_start",
    "ari_end",
    "renew_at",
    "ari_next_poll",
}


def renewal_failed_issue_id(entry_id: str) -> str:
    """The Repairs issue raised while renewals of an entry fail."""
    return f"renewal_failed_{entry_id}"


def delegation_issue_id(entry_id: str) -> str:
    """The Repairs issue raised while a CNAME delegation of an entry is broken."""
    return f"cname_delegation_broken_{entry_id}"


class RenewalScheduler:
    """Decides when an entry's certificate is renewed and runs the renewals."""

    def __init__(
        self, hass: HomeAssistant, entry_id: str, manager: CertificateManager
    ) -> None:
        """Bind the scheduler to its entry's certificate manager."""
        self.hass = hass
        self.entry_id = entry_id
        self.manager = manager
        self.state = RenewalState()
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.renewal_{entry_id}", atomic_writes=True
        )
        self._unsub_timer: CALLBACK_TYPE | None = None
        self._unsub_started: CALLBACK_TYPE | None = None
        self._listeners: list[Callable[[], None]] = []
        self._rng = random.Random()
        self._stopped = False
        self.next_check: datetime | None = None

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call ``listener`` whenever the state changes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def async_start(self) -> None:
        """Load the stored state and schedule the first check once HA has started."""
        self.state = RenewalState.from_json(await self._store.async_load())
        self.manager.renew_at = self.state.renew_at
        self._unsub_started = async_at_started(self.hass, self._async_started)

    @callback
    def async_stop(self) -> None:
        """Cancel every timer."""
        self._stopped = True
        if self._unsub_started is not None:
            self._unsub_started()
            self._unsub_started = None
        self._cancel_timer()

    async def _async_started(self, _hass: HomeAssistant) -> None:
        self._unsub_started = None
        now = dt_util.utcnow()
        first = now + timedelta(seconds=self._rng.uniform(*FIRST_CHECK_DELAY))
        if self.state.failures and self.state.next_attempt is not None:
            first = max(first, self.state.next_attempt)
        self._schedule(first)

    async def async_run(self, force: bool = False) -> RenewalOutcome:
        """Renew now when due (or forced): the one path for timer, action and repairs."""
        now = dt_util.utcnow()
        await self._async_refresh_ari(now)
        try:
            outcome = await self.manager.async_renew(force=force)
        except CertificateRenewalError as err:
            failures = self.state.failures + 1
            retry = next_retry(now, failures, err.retry_after)
            await self._async_update(
                failures=failures,
                next_attempt=retry,
                last_result=RenewalResult.FAILED,
                last_error=err.detail,
                last_check=now,
            )
            if isinstance(err, CertificateDelegationError):
                # The delegation issue says exactly what to do; no second issue.
                ir.async_delete_issue(
                    self.hass, DOMAIN, renewal_failed_issue_id(self.entry_id)
                )
                self._raise_delegation_issue(err)
            else:
                # The delegations were checked before the order: they are fine.
                ir.async_delete_issue(
                    self.hass, DOMAIN, delegation_issue_id(self.entry_id)
                )
                self._raise_failure_issue(err.detail)
            LOGGER.warning(
                "Certificate renewal failed (%d in a row), next attempt at %s: %s",
                failures,
                retry.isoformat(),
                err.detail,
            )
            self._schedule(retry)
            raise
        ir.async_delete_issue(self.hass, DOMAIN, renewal_failed_issue_id(self.entry_id))
        await self._async_sync_delegation_issue(outcome.renewed)
        decision_due_at = await self._async_due_at()
        updates: dict[str, Any] = {
            "failures": 0,
            "next_attempt": None,
            "last_result": RenewalResult.RENEWED
            if outcome.renewed
            else RenewalResult.NOT_DUE,
            "last_error": None,
            "last_check": now,
            "due_at": decision_due_at,
        }
        await self._async_update(**updates)
        if outcome.renewed:
            await async_rotate_after_renewal(self.hass, self.entry_id, self.manager)
        self._schedule(self._next_check_time(now))
        return outcome

    async def _async_check(self, _now: datetime) -> None:
        self._unsub_timer = None
        if self._stopped:
            return
        now = dt_util.utcnow()
        if (
            self.state.failures
            and self.state.next_attempt is not None
            and now < self.state.next_attempt
        ):
            self._schedule(self.state.next_attempt)
            return
        try:
            await self.async_run()
        except CertificateRenewalError:
            return

    async def _async_due_at(self) -> datetime | None:
        current = await self.manager.async_current()
        if current is None:
            return None
        decision = await self.manager.async_decide(current)
        return decision.due_at

    async def _async_refresh_ari(self, now: datetime) -> None:
        """Ask the CA for its renewal window when it is time to."""
        state = self.state
        if state.ari_next_poll is not None and now < state.ari_next_poll:
            return
        current = await self.manager.async_current()
        if current is None:
            return
        try:
            info = await self.manager.async_renewal_info()
        except (AcmeError, OSError, ValueError) as err:
            LOGGER.debug("Renewal information not available: %s", err)
            await self._async_update(ari_next_poll=now + ARI_DEFAULT_POLL)
            return
        if info is None:
            await self._async_update(
                ari_next_poll=now + ARI_MAX_POLL,
                renew_at=None,
                ari_serial=None,
                ari_start=None,
                ari_end=None,
            )
            self.manager.renew_at = None
            return
        poll = ARI_DEFAULT_POLL
        if info.retry_after is not None:
            poll = min(max(info.retry_after - now, ARI_MIN_POLL), ARI_MAX_POLL)
        renew_at = state.renew_at
        if (
            state.ari_serial != current.serial_number
            or state.ari_start != info.start
            or state.ari_end != info.end
            or renew_at is None
        ):
            renew_at = moment_in_window(info.start, info.end, self._rng)
            LOGGER.debug(
                "CA suggests renewing between %s and %s; picked %s",
                info.start,
                info.end,
                renew_at,
            )
        self.manager.renew_at = renew_at
        await self._async_update(
            ari_serial=current.serial_number,
            ari_start=info.start,
            ari_end=info.end,
            renew_at=renew_at,
            ari_next_poll=now + poll,
        )

    def _next_check_time(self, now: datetime) -> datetime:
        jitter = timedelta(seconds=self._rng.uniform(0, CHECK_JITTER.total_seconds()))
        candidates = [now + CHECK_INTERVAL - jitter]
        candidates.extend(
            moment
            for moment in (self.state.due_at, self.state.ari_next_poll)
            if moment is not None and moment > now
        )
        return min(candidates)

    def _schedule(self, when: datetime) -> None:
        if self._stopped:
            return
        self._cancel_timer()
        self._unsub_timer = async_track_point_in_utc_time(
            self.hass, self._async_check, when
        )
        self.next_check = when
        self._notify()

    def _cancel_timer(self) -> None:
        if self._unsub_timer is not None:
            self._unsub_timer()
            self._unsub_timer = None

    def _raise_failure_issue(self, detail: str) -> None:
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
