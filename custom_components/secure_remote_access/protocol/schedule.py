"""When to renew a certificate (no Home Assistant imports).

Let's Encrypt's guidance: follow the CA's ARI window when it offers one (renew
at a random moment inside it); otherwise renew when a third of the lifetime is
left, or half of it for lifetimes under ten days. Whatever ARI says, renew
when less than a twentieth of the lifetime is left (certmagic's emergency
rule). Never assume 90 days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import random
from typing import Final

SHORT_LIFETIME: Final = timedelta(days=10)
# The part of the lifetime below which a renewal is due whatever ARI says.
EMERGENCY_FRACTION: Final = 20
# Waits after the 1st, 2nd, 3rd and later consecutive failed renewals.
RETRY_DELAYS: Final = (
    timedelta(minutes=1),
    timedelta(minutes=10),
    timedelta(minutes=100),
    timedelta(days=1),
)
# Short-lived certificates are retried at least this many times per lifetime.
RETRIES_PER_LIFETIME: Final = 24
MIN_RETRY_DELAY: Final = RETRY_DELAYS[0]


class RenewalReason(StrEnum):
    """Why a renewal is, or is not, due."""

    FORCED = "forced"
    RETRY = "retry"
    NO_CERTIFICATE = "no_certificate"
    UNREADABLE = "unreadable"
    KEY_MISMATCH = "key_mismatch"
    NAMES_CHANGED = "names_changed"
    KEY_TYPE_CHANGED = "key_type_changed"
    CA_CHANGED = "ca_changed"
    PROFILE_CHANGED = "profile_changed"
    EXPIRED = "expired"
    EMERGENCY = "emergency"
    ARI_WINDOW = "ari_window"
    LIFETIME = "lifetime"
    NOT_DUE = "not_due"


#: The pair on disk is missing or does not fit the settings: no reason to wait.
UNFIT_REASONS: Final = frozenset(
    {
        RenewalReason.NO_CERTIFICATE,
        RenewalReason.UNREADABLE,
        RenewalReason.KEY_MISMATCH,
        RenewalReason.NAMES_CHANGED,
        RenewalReason.KEY_TYPE_CHANGED,
        RenewalReason.CA_CHANGED,
        RenewalReason.PROFILE_CHANGED,
    }
)


@dataclass(frozen=True, slots=True)
class RenewalDecision:
    """Whether to renew now, why, and when it becomes due otherwise."""

    due: bool
    reason: RenewalReason
    due_at: datetime | None = None


def lifetime_renewal_time(not_before: datetime, not_after: datetime) -> datetime:
    """The moment a third (half, for lifetimes under ten days) of the lifetime is left."""
    lifetime = not_after - not_before
    left = lifetime / 2 if lifetime < SHORT_LIFETIME else lifetime / 3
    return not_after - left


def emergency_renewal_time(not_before: datetime, not_after: datetime) -> datetime:
    """The moment only a twentieth of the lifetime is left."""
    return not_after - (not_after - not_before) / EMERGENCY_FRACTION


def moment_in_window(
    start: datetime, end: datetime, rng: random.Random | None = None
) -> datetime:
    """A uniformly random moment inside an ARI window."""
    chooser = rng or random.Random()
    span = max((end - start).total_seconds(), 0.0)
    return start + timedelta(seconds=chooser.uniform(0, span))


def decide(
    now: datetime,
    not_before: datetime,
    not_after: datetime,
    *,
    renew_at: datetime | None = None,
) -> RenewalDecision:
    """Decide for a readable certificate that covers the wanted names.

    ``renew_at`` is the moment picked inside the CA's ARI window for *this*
    certificate, when the CA offered one; without it the lifetime rule applies.
    The emergency time wins over a later ARI moment.
    """
    if now >= not_after:
        return RenewalDecision(True, RenewalReason.EXPIRED, not_after)
    emergency = emergency_renewal_time(not_before, not_after)
    if renew_at is not None and renew_at <= emergency:
        due_at, reason = renew_at, RenewalReason.ARI_WINDOW
    elif renew_at is not None:
        due_at, reason = emergency, RenewalReason.EMERGENCY
    else:
        due_at, reason = (
            lifetime_renewal_time(not_before, not_after),
            RenewalReason.LIFETIME,
        )
    if now >= due_at:
        return RenewalDecision(True, reason, due_at)
    return RenewalDecision(False, RenewalReason.NOT_DUE, due_at)


def retry_delay(failures: int, lifetime: timedelta | None = None) -> timedelta:
    """How long to wait after ``failures`` consecutive failed attempts (>= 1).

    With a ``lifetime``, the wait is capped so that a short-lived certificate
    is retried often enough to be renewed before it expires.
    """
    delay = RETRY_DELAYS[min(max(failures, 1), len(RETRY_DELAYS)) - 1]
    if lifetime is not None:
        delay = min(delay, max(lifetime / RETRIES_PER_LIFETIME, MIN_RETRY_DELAY))
    return delay


def next_retry(
    ended: datetime,
    failures: int,
    ca_retry_after: datetime | None = None,
    lifetime: timedelta | None = None,
) -> datetime:
    """The next attempt after a failure that ended at ``ended``.

    Never before the CA's own retry time.
    """
    retry = ended + retry_delay(failures, lifetime)
    if ca_retry_after is not None and ca_retry_after > retry:
        return ca_retry_after
    return retry
