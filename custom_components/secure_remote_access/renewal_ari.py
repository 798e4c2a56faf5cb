"""The CA's renewal window (ARI) for the certificate on disk: when to ask, what it says."""

from __future__ import annotations

from datetime import datetime
import random
from typing import TYPE_CHECKING, Any

from .const import LOGGER
from .protocol.acme import AcmeError
from .protocol.schedule import moment_in_window
from .protocol.x509 import CertificateError
from .renewal_state import (
    _NO_ARI,
    ARI_DEFAULT_POLL,
    ARI_MAX_POLL,
    ARI_MIN_POLL,
    RenewalState,
)

if TYPE_CHECKING:
    from .certificate import CertificateManager, CurrentCertificate


async def async_ari_changes(
    manager: CertificateManager,
    state: RenewalState,
    current: CurrentCertificate,
    now: datetime,
    rng: random.Random,
) -> dict[str, Any] | None:
    """The renewal state's ARI fields after asking the CA; None: not time to ask yet.

    The window belongs to ``current``'s serial; a moment is picked in it once
    (again when the CA moves the window), and the CA is asked again after its
    Retry-After, bounded by ``ARI_MIN_POLL`` and ``ARI_MAX_POLL``.
    """
    same = state.ari_serial == current.serial
    if same and state.ari_next_poll is not None and now < state.ari_next_poll:
        return None
    try:
        info = await manager.async_renewal_info(current)
    except (AcmeError, CertificateError, OSError, ValueError) as err:
        LOGGER.debug("Renewal information not available: %s", err)
        changes: dict[str, Any] = {} if same else dict(_NO_ARI)
        return {**changes, "ari_next_poll": now + ARI_DEFAULT_POLL}
    if info is None:
        return {**_NO_ARI, "ari_next_poll": now + ARI_MAX_POLL}
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
        renew_at = moment_in_window(info.start, info.end, rng)
        LOGGER.debug(
            "CA suggests renewing %s between %s and %s; picked %s",
            current.serial,
            info.start,
            info.end,
            renew_at,
        )
    return {
        "ari_serial": current.serial,
        "ari_start": info.start,
        "ari_end": info.end,
        "renew_at": renew_at,
        "ari_next_poll": now + poll,
    }
