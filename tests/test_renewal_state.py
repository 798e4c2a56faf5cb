"""The persisted renewal state: broken files and clocks that jumped."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from custom_components.secure_remote_access.certificate_settings import (
    CertificateSettings,
    OrderedWith,
)
from custom_components.secure_remote_access.renewal_state import (
    CHECK_INTERVAL,
    MAX_RETRY_AFTER,
    RenewalState,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        # A time without a zone is UTC.
        (
            {"failures": 1, "next_attempt": "2026-12-01T13:00:00"},
            RenewalState(failures=1, next_attempt=NOW + timedelta(hours=1)),
        ),
        # Impossible dates and wrong types fall back to defaults.
        ({"next_attempt": "2025-13-01T00:00:00+00:00"}, RenewalState()),
        ({"ari_next_poll": 12}, RenewalState()),
        ({"failures": -3, "failed_order": "yes"}, RenewalState()),
        ({"failures": True}, RenewalState()),
        ({"last_outcome": ["x"], "last_error": 5}, RenewalState()),
        ([1, 2, 3], RenewalState()),
        (None, RenewalState()),
    ],
)
def test_broken_state_files(stored: object, expected: RenewalState) -> None:
    """Whatever is in the file, loading never raises and never keeps nonsense."""
    assert RenewalState.from_json(stored) == expected  # type: ignore[arg-type]


def test_round_trip() -> None:
    """What is saved is what is loaded."""
    state = RenewalState(
        failures=2,
        failed_serial="ab",
        failed_order=True,
        next_attempt=NOW,
        retry_after=NOW + timedelta(hours=2),
        last_outcome={"renewed": False},
    )
    assert RenewalState.from_json(state.to_json()) == state


def test_times_from_a_clock_that_jumped_back_are_reset() -> None:
    """A retry a year away or a Retry-After beyond any CA's are not kept."""
    ahead = RenewalState(
        failures=1,
        next_attempt=NOW + timedelta(days=365),
        retry_after=NOW + timedelta(days=365),
        ari_next_poll=NOW + timedelta(days=365),
    )
    sane = ahead.sanitized(NOW)
    assert sane.next_attempt is not None
    assert sane.next_attempt <= NOW + timedelta(minutes=1)
    assert sane.retry_after is None
    assert sane.ari_next_poll == NOW
    # A week-long rate limit is a real one: kept.
    week = RenewalState(retry_after=NOW + timedelta(days=7))
    assert week.sanitized(NOW) is week
    assert timedelta(days=7) < MAX_RETRY_AFTER


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        # Nothing due: twice a day, a little earlier by the jitter.
        (RenewalState(), NOW + CHECK_INTERVAL - timedelta(minutes=10)),
        # Due soon, or the ARI window is polled again soon.
        (RenewalState(due_at=NOW + timedelta(hours=2)), NOW + timedelta(hours=2)),
        (
            RenewalState(ari_next_poll=NOW + timedelta(hours=3)),
            NOW + timedelta(hours=3),
        ),
        # A due time already passed does not make the check run now again.
        (
            RenewalState(due_at=NOW - timedelta(hours=2)),
            NOW + CHECK_INTERVAL - timedelta(minutes=10),
        ),
        # After a failure, the retry; never before the CA's Retry-After.
        (
            RenewalState(failures=2, next_attempt=NOW + timedelta(minutes=5)),
            NOW + timedelta(minutes=5),
        ),
        (
            RenewalState(
                failures=1,
                next_attempt=NOW + timedelta(minutes=5),
                retry_after=NOW + timedelta(hours=1),
            ),
            NOW + timedelta(hours=1),
        ),
        # Still, at least twice a day: a clock that jumped back is found.
        (
            RenewalState(failures=1, next_attempt=NOW + timedelta(days=3)),
            NOW + CHECK_INTERVAL,
        ),
    ],
)
def test_next_check_time(state: RenewalState, expected: datetime) -> None:
    """The next check: retries, due moments, Retry-After and the twice-daily cap."""
    assert state.next_check_time(NOW, timedelta(minutes=10)) == expected


def _settings(directory: str = "https://ca.example/dir") -> CertificateSettings:
    return CertificateSettings.parse(
        ["myhome.duckdns.org"],
        {
            "acme_directory": directory,
            "certificate_path": "/ssl/fullchain.pem",
            "private_key_path": "/ssl/privkey.pem",
            "profile": "classic",
        },
    )


def test_settings_changes() -> None:
    """Other settings end the backoff; another CA's Retry-After goes with it."""
    settings = _settings()
    # Stored before conditions were: taken as they are, backoff kept, and the
    # last certificate written as ordered with today's settings.
    old = RenewalState(failures=2, next_attempt=NOW, last_outcome={"serial": "ab"})
    state = replace(old, **(old.settings_changes("one", settings) or {}))
    assert (state.failures, state.next_attempt) == (2, NOW)
    assert state.ordered_with("ab") == OrderedWith("https://ca.example/dir", "classic")
    assert state.ordered_with("cd") is None
    assert state.settings_changes("one", settings) is None

    failing = replace(
        state, failed_order=True, failed_serial="ab", retry_after=NOW + CHECK_INTERVAL
    )
    changed = replace(failing, **(failing.settings_changes("two", settings) or {}))
    assert (changed.failures, changed.next_attempt, changed.failed_order) == (
        0,
        None,
        False,
    )
    assert changed.retry_after == NOW + CHECK_INTERVAL  # the same CA's
    assert changed.ordered_with("ab") is not None  # the certificate's own history

    other_ca = failing.settings_changes("two", _settings("https://other.example/d"))
    assert other_ca is not None
    assert other_ca["retry_after"] is None
    assert other_ca["conditions_directory"] == "https://other.example/d"
