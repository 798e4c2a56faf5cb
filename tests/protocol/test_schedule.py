"""When certificates are renewed: ARI windows, lifetimes, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import random

import pytest

from custom_components.secure_remote_access.protocol.schedule import (
    RenewalReason,
    decide,
    emergency_renewal_time,
    lifetime_renewal_time,
    moment_in_window,
    next_retry,
    retry_delay,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lifetime", "renew_after"),
    [
        (timedelta(days=90), timedelta(days=60)),
        (timedelta(days=64), timedelta(days=64) * 2 / 3),
        (timedelta(days=45), timedelta(days=30)),
        (timedelta(hours=160), timedelta(hours=80)),
        (timedelta(days=6), timedelta(days=3)),
    ],
)
def test_lifetime_rule(lifetime: timedelta, renew_after: timedelta) -> None:
    """A third of the lifetime left, half for lifetimes under ten days."""
    assert lifetime_renewal_time(T0, T0 + lifetime) == T0 + renew_after


def test_decide_lifetime() -> None:
    """Not due before the threshold, due after it, expired after not_after."""
    not_after = T0 + timedelta(days=90)
    early = decide(T0 + timedelta(days=59), T0, not_after)
    assert not early.due
    assert early.reason is RenewalReason.NOT_DUE
    assert early.due_at == T0 + timedelta(days=60)
    due = decide(T0 + timedelta(days=60), T0, not_after)
    assert due.due
    assert due.reason is RenewalReason.LIFETIME
    expired = decide(not_after + timedelta(seconds=1), T0, not_after)
    assert expired.due
    assert expired.reason is RenewalReason.EXPIRED


def test_decide_ari() -> None:
    """The moment chosen inside the ARI window wins over the lifetime rule."""
    not_after = T0 + timedelta(days=90)
    renew_at = T0 + timedelta(days=10)
    assert not decide(T0 + timedelta(days=9), T0, not_after, renew_at=renew_at).due
    decision = decide(T0 + timedelta(days=10), T0, not_after, renew_at=renew_at)
    assert decision.due
    assert decision.reason is RenewalReason.ARI_WINDOW
    late = decide(T0, T0, not_after, renew_at=not_after + timedelta(days=5))
    assert late.due_at == not_after - timedelta(days=4.5)


@pytest.mark.parametrize(
    "lifetime", [timedelta(days=90), timedelta(days=45), timedelta(days=6)]
)
def test_emergency_floor_wins_over_ari(lifetime: timedelta) -> None:
    """Whatever ARI says, a twentieth of the lifetime left makes the renewal due."""
    not_after = T0 + lifetime
    floor = not_after - lifetime / 20
    assert emergency_renewal_time(T0, not_after) == floor
    renew_at = not_after + timedelta(days=30)
    assert not decide(
        floor - timedelta(seconds=1), T0, not_after, renew_at=renew_at
    ).due
    decision = decide(floor, T0, not_after, renew_at=renew_at)
    assert (decision.due, decision.reason) == (True, RenewalReason.EMERGENCY)
    # An ARI moment before the floor is followed as it is.
    early = decide(T0 + lifetime / 2, T0, not_after, renew_at=T0 + lifetime / 2)
    assert (early.due, early.reason) == (True, RenewalReason.ARI_WINDOW)


def test_moment_in_window() -> None:
    """A random moment inside the window, reproducible with a seeded generator."""
    start, end = T0, T0 + timedelta(hours=6)
    moments = {moment_in_window(start, end, random.Random(seed)) for seed in range(20)}
    assert all(start <= moment <= end for moment in moments)
    assert len(moments) > 1
    assert moment_in_window(end, start) == end


def test_retries() -> None:
    """1 minute, 10 minutes, 100 minutes, then daily; the CA's retry time wins."""
    assert [retry_delay(n) for n in (1, 2, 3, 4, 9)] == [
        timedelta(minutes=1),
        timedelta(minutes=10),
        timedelta(minutes=100),
        timedelta(days=1),
        timedelta(days=1),
    ]
    assert next_retry(T0, 1) == T0 + timedelta(minutes=1)
    assert next_retry(T0, 1, T0 + timedelta(hours=3)) == T0 + timedelta(hours=3)
    assert next_retry(T0, 4, T0 + timedelta(hours=3)) == T0 + timedelta(days=1)


def test_retries_of_short_lived_certificates() -> None:
    """A 6-day certificate is retried at least every 6 hours, never faster than 1 min."""
    six_days = timedelta(days=6)
    assert retry_delay(4, six_days) == timedelta(hours=6)
    assert retry_delay(3, six_days) == timedelta(minutes=100)
    assert retry_delay(9, timedelta(minutes=10)) == timedelta(minutes=1)
    assert retry_delay(9, timedelta(days=90)) == timedelta(days=1)
    assert next_retry(T0, 5, None, six_days) == T0 + timedelta(hours=6)
