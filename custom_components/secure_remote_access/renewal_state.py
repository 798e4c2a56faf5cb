"""What renewal knows: the persisted state, outcomes, results and the issued stash.

The renewal coordinator (renewal.py) is its only writer; entities, the
action, diagnostics and Repairs read it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .protocol.acme import IssuedCertificate
from .protocol.schedule import MIN_RETRY_DELAY, RETRY_DELAYS, decide
from .protocol.x509 import CertificateError

if TYPE_CHECKING:
    from .certificate import CurrentCertificate
    from .certificate_settings import CertificateSettings

# Ask the CA for its ARI window at most this often unless it says otherwise.
ARI_DEFAULT_POLL: Final = timedelta(hours=6)
ARI_MIN_POLL: Final = timedelta(minutes=1)
ARI_MAX_POLL: Final = timedelta(days=1)
# At least two checks a day (at jittered times).
CHECK_INTERVAL: Final = timedelta(hours=12)
# Longer waits than these are a clock that jumped, not a CA's request.
MAX_RETRY_DELAY: Final = RETRY_DELAYS[-1] + timedelta(hours=1)
MAX_RETRY_AFTER: Final = timedelta(days=8)


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
    validation_method: str | None = None
    """dns-01, dns-persist-01 or reused_authorization; None when nothing was ordered."""
    validation_note: str | None = None
    """Why dns-01 was used, or what happened to the persistent record."""
    validation_detail: str | None = None
    """The note in words where it says more (the CA's refusal of dns-persist-01)."""

    def as_response(self) -> dict[str, Any]:
        """The renew_certificate action's response."""
        return {
            "renewed": self.renewed,
            "reason": self.reason,
            "names": list(self.names),
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "serial": self.serial,
            "profile": self.profile,
            "validation_method": self.validation_method,
            "validation_note": self.validation_note,
            "validation_detail": self.validation_detail,
        }


@dataclass(frozen=True, slots=True)
class RenewalState:
    """Everything renewal knows, persisted across restarts.

    The ARI window (``ari_start`` .. ``ari_end``, the moment ``renew_at``
    picked in it and when to ask again) belongs to the certificate
    ``ari_serial``; for any other certificate it is ignored. ``next_attempt``
    is when a failed attempt is retried (``failed_serial`` is the certificate
    that was on disk then, ``failed_order`` whether the attempt was going to
    order one), ``retry_after`` the CA's own "not before" time: no request is
    sent to the CA before it.
    """

    failures: int = 0
    failed_serial: str | None = None
    failed_order: bool = False
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
                value = _parse_time(value)
            elif key == "failures":
                value = value if type(value) is int and value >= 0 else None
            elif key == "failed_order":
                value = value if isinstance(value, bool) else None
            elif key == "last_outcome":
                value = value if isinstance(value, dict) else None
            elif value is not None and not isinstance(value, str):
                value = None
            if value is not None:
                values[key] = value
        return cls(**values)

    def sanitized(self, now: datetime) -> RenewalState:
        """This state with times no clock could have meant; after the clock jumped back.

        A retry is never more than a day away (or than the CA's Retry-After),
        the CA's Retry-After never more than ``MAX_RETRY_AFTER``, an ARI poll
        never more than ``ARI_MAX_POLL``.
        """
        changes: dict[str, Any] = {}
        retry_after = self.retry_after
        if retry_after is not None and retry_after > now + MAX_RETRY_AFTER:
            changes["retry_after"] = retry_after = None
        # A retry waits for the CA's Retry-After, however long that is.
        latest_attempt = max(now + MAX_RETRY_DELAY, retry_after or now)
        if self.next_attempt is not None and self.next_attempt > latest_attempt:
            changes["next_attempt"] = now + MIN_RETRY_DELAY
        if self.ari_next_poll is not None and self.ari_next_poll > now + ARI_MAX_POLL:
            changes["ari_next_poll"] = now
        return replace(self, **changes) if changes else self

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

    def next_check_time(self, now: datetime, jitter: timedelta) -> datetime:
        """When the coordinator checks next: the retry, else the next due moment.

        Whatever is stored, a check runs at least every CHECK_INTERVAL: it
        finds a clock that jumped back (see `sanitized`).
        """
        if self.failures and self.next_attempt is not None:
            when = self.next_attempt
        else:
            candidates = [now + CHECK_INTERVAL - jitter]
            candidates.extend(
                moment
                for moment in (self.due_at, self.ari_next_poll)
                if moment is not None and moment > now
            )
            when = min(candidates)
        if self.retry_after is not None:
            when = max(when, self.retry_after)
        return min(when, now + CHECK_INTERVAL)


def _parse_time(value: Any) -> datetime | None:
    """A stored time, None when it is broken; a time without a zone is UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt_util.parse_datetime(value)
    except ValueError:
        return None
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


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


STORAGE_VERSION: Final = 1


def renewal_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Where an entry's renewal state is kept."""
    return Store(
        hass, STORAGE_VERSION, f"{DOMAIN}.renewal_{entry_id}", atomic_writes=True
    )


class KeptCertificate(NamedTuple):
    """A certificate kept for writing, and the settings it was ordered with."""

    issued: IssuedCertificate
    ordered_for: str


class IssuedStash:
    """A certificate the CA issued that is not written yet (its key included).

    Kept until written, so that a failed write or a crash never costs a new
    order (Let's Encrypt allows five of the same names in seven days). Held in
    memory too: Home Assistant's store only logs a save the disk refused.
    """

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Bind the stash to its entry (a private store: it holds a key)."""
        self._store: Store[dict[str, Any]] = Store(
            hass,
            STORAGE_VERSION,
            f"{DOMAIN}.issued_{entry_id}",
            private=True,
            atomic_writes=True,
        )
        self._kept: KeptCertificate | None = None
        self._loaded = False

    async def async_keep(self, issued: IssuedCertificate, ordered_for: str) -> None:
        """Keep ``issued``, ordered with the settings ``ordered_for``, until cleared."""
        self._kept, self._loaded = KeptCertificate(issued, ordered_for), True
        await self._store.async_save({**issued.to_json(), _ORDERED_FOR: ordered_for})

    async def async_clear(self) -> None:
        """Forget the certificate: it is written, or no longer wanted."""
        self._kept, self._loaded = None, True
        await self._store.async_save({})

    async def async_load(self) -> KeptCertificate | None:
        """The kept certificate; None when there is none or it is unreadable."""
        if self._loaded:
            return self._kept
        data = await self._store.async_load()
        self._loaded = True
        if not data:  # nothing kept ({} once written)
            return None
        try:
            issued = IssuedCertificate.from_json(data)
        except (KeyError, TypeError, ValueError, CertificateError) as err:
            LOGGER.warning(
                "Dropped an unreadable certificate kept for writing: %s", err
            )
            await self.async_clear()
            return None
        self._kept = KeptCertificate(issued, str(data.get(_ORDERED_FOR, "")))
        return self._kept

    async def async_usable(
        self, settings: CertificateSettings, current: CurrentCertificate | None
    ) -> IssuedCertificate | None:
        """The kept certificate when it is still good to write; otherwise it is dropped.

        Good: ordered with today's settings (CA, key type, profile, names), not
        due itself, and newer than the pair on disk.
        """
        if (kept := await self.async_load()) is None:
            return None
        issued = kept.issued
        if (
            kept.ordered_for != ordered_for(settings)
            or set(issued.names) != set(settings.names)
            or decide(dt_util.utcnow(), issued.not_before, issued.not_after).due
            or (
                current is not None
                and (
                    current.serial == issued.serial_hex
                    or issued.not_after <= current.info.not_after
                )
            )
        ):
            await self.async_clear()
            return None
        LOGGER.info(
            "Writing certificate %s, obtained before the last attempt failed",
            issued.serial_hex,
        )
        return issued

    async def async_remove(self) -> None:
        """Delete the store itself (the entry is removed)."""
        self._kept, self._loaded = None, True
        await self._store.async_remove()


_ORDERED_FOR: Final = "ordered_for"


def ordered_for(settings: CertificateSettings) -> str:
    """The settings a kept certificate must have been ordered with to be written."""
    return f"{settings.directory_url} {settings.key_type} {settings.profile or ''}"


async def async_remove_renewal_state(hass: HomeAssistant, entry_id: str) -> None:
    """Delete an entry's stored renewal state and any certificate kept for writing."""
    await renewal_store(hass, entry_id).async_remove()
    await IssuedStash(hass, entry_id).async_remove()
