"""What renewal knows: the persisted state, outcomes, results and the issued stash.

The renewal coordinator (renewal.py) is its only writer; entities, the
action, diagnostics and Repairs read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
import hashlib
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .certificate_settings import CertificateFacts, OrderedWith, misfits
from .const import CONF_DUCKDNS_URL, DOMAIN, LOGGER
from .protocol.acme import IssuedCertificate
from .protocol.schedule import MIN_RETRY_DELAY, RETRY_DELAYS, decide
from .protocol.x509 import CertificateError, inspect_pem

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

    ``ordered_serial`` is the certificate this entry wrote last, ordered from
    ``ordered_directory`` with ``ordered_profile``: what the certificate
    itself does not show when it is judged against new settings.
    ``conditions`` is a digest of the settings the state was built with, and
    ``conditions_directory`` their CA: when they change, the backoff starts
    over (and the CA's Retry-After goes with its CA).
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
    ordered_serial: str | None = None
    ordered_directory: str | None = None
    ordered_profile: str | None = None
    conditions: str | None = None
    conditions_directory: str | None = None

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

    def settings_changes(
        self, conditions: str, settings: CertificateSettings
    ) -> dict[str, Any] | None:
        """The changes when this state was built with other ``conditions`` (None: same).

        Other settings start the failure backoff over and drop another CA's
        Retry-After. A state stored before conditions were recorded takes
        them, and its last certificate as ordered with ``settings``.
        """
        if self.conditions == conditions:
            return None
        changes: dict[str, Any] = {
            "conditions": conditions,
            "conditions_directory": settings.directory_url,
        }
        if self.conditions is None:
            if self.ordered_serial is None and self.last_outcome:
                changes |= {
                    "ordered_serial": self.last_outcome.get("serial"),
                    "ordered_directory": settings.directory_url,
                    "ordered_profile": settings.profile,
                }
            return changes
        if self.retry_after_with(settings) is None:
            changes["retry_after"] = None
        return changes | _NO_BACKOFF

    def retry_after_with(self, settings: CertificateSettings) -> datetime | None:
        """The CA's Retry-After that still holds with ``settings`` (another CA's goes)."""
        if (
            self.conditions is not None
            and self.conditions_directory != settings.directory_url
        ):
            return None
        return self.retry_after

    def ordered_with(self, serial: str | None) -> OrderedWith | None:
        """What the certificate ``serial`` was ordered with, when this entry recorded it."""
        if serial is None or serial != self.ordered_serial:
            return None
        if self.ordered_directory is None:
            return None
        return OrderedWith(self.ordered_directory, self.ordered_profile)

    def not_before(self) -> datetime | None:
        """The earliest time the next automatic attempt may run."""
        moments = [self.retry_after]
        if self.failures:
            moments.append(self.next_attempt)
        present = [moment for moment in moments if moment is not None]
        return max(present) if present else None

    @property
    def next_renewal(self) -> datetime | None:
        """When the certificate will be renewed (or retried) next: never
        before the CA's Retry-After."""
        when = self.due_at
        if self.failures and self.next_attempt is not None:
            when = self.next_attempt
        if when is not None and self.retry_after is not None:
            return max(when, self.retry_after)
        return when

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
# The failure backoff starting over (the count, the retry time, what failed).
_NO_BACKOFF: Final[dict[str, Any]] = {
    "failures": 0,
    "failed_serial": None,
    "failed_order": False,
    "next_attempt": None,
}


STORAGE_VERSION: Final = 1


def conditions_digest(
    settings: CertificateSettings, entry_data: Mapping[str, Any]
) -> str:
    """A digest of what renewals depend on: the settings and the DuckDNS account."""
    text = repr(
        (settings, entry_data.get(CONF_TOKEN), entry_data.get(CONF_DUCKDNS_URL))
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def renewal_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Where an entry's renewal state is kept."""
    return Store(
        hass, STORAGE_VERSION, f"{DOMAIN}.renewal_{entry_id}", atomic_writes=True
    )


class KeptCertificate(NamedTuple):
    """A certificate kept for writing, and what it was ordered with."""

    issued: IssuedCertificate
    ordered_with: OrderedWith


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

    async def async_keep(
        self, issued: IssuedCertificate, ordered_with: OrderedWith
    ) -> None:
        """Keep ``issued``, ordered with ``ordered_with``, until cleared."""
        self._kept, self._loaded = KeptCertificate(issued, ordered_with), True
        await self._store.async_save(
            {**issued.to_json(), _ORDERED_WITH: ordered_with._asdict()}
        )

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
            ordered_with = _stored_ordered_with(data)
        except (KeyError, TypeError, ValueError, CertificateError) as err:
            LOGGER.warning(
                "Dropped an unreadable certificate kept for writing: %s", err
            )
            await self.async_clear()
            return None
        self._kept = KeptCertificate(issued, ordered_with)
        return self._kept

    async def async_usable(
        self, settings: CertificateSettings, current: CurrentCertificate | None
    ) -> IssuedCertificate | None:
        """The kept certificate when it is still good to write; otherwise it is dropped.

        Good: it fits today's settings (`misfits`: names, key type, CA,
        profile), is not due itself, and is newer than the pair on disk.
        """
        if (kept := await self.async_load()) is None:
            return None
        issued = kept.issued
        facts = CertificateFacts.of(
            inspect_pem(issued.fullchain_pem), kept.ordered_with
        )
        if (
            misfits(settings, facts)
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


_ORDERED_WITH: Final = "ordered_with"


def _stored_ordered_with(data: dict[str, Any]) -> OrderedWith:
    """What a kept certificate was ordered with, as the stash stored it.

    Older stashes kept one text, ``"<directory> <key type> <profile>"``.
    """
    if isinstance(stored := data.get(_ORDERED_WITH), dict):
        return OrderedWith(str(stored["directory_url"]), stored.get("profile") or None)
    directory, _key_type, profile = str(data["ordered_for"]).split(" ")
    return OrderedWith(directory, profile or None)


async def async_remove_renewal_state(hass: HomeAssistant, entry_id: str) -> None:
    """Delete an entry's stored renewal state and any certificate kept for writing."""
    await renewal_store(hass, entry_id).async_remove()
    await IssuedStash(hass, entry_id).async_remove()
