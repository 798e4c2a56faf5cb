"""The Repairs issues of certificate renewal: renewals failing, a broken delegation.

Both persist over a restart: the next attempt that would show them again may
be a day away. The renewal coordinator deletes them when they no longer hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .certificate import CertificateDelegationError
from .const import DOMAIN


def renewal_failed_issue_id(entry_id: str) -> str:
    """The Repairs issue raised while renewals of an entry fail."""
    return f"renewal_failed_{entry_id}"


def delegation_issue_id(entry_id: str) -> str:
    """The Repairs issue raised while a CNAME delegation of an entry is broken."""
    return f"cname_delegation_broken_{entry_id}"


@callback
def async_raise_renewal_failed(
    hass: HomeAssistant,
    entry_id: str,
    names: Sequence[str],
    detail: str,
    next_attempt: datetime,
) -> None:
    """Show that renewing fails: why, and when it is tried again (fixable)."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        renewal_failed_issue_id(entry_id),
        is_fixable=True,
        is_persistent=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key="renewal_failed",
        translation_placeholders={
            "names": ", ".join(names),
            "detail": detail,
            "next_attempt": dt_util.as_local(next_attempt).strftime("%Y-%m-%d %H:%M"),
        },
        data={"entry_id": entry_id},
    )


@callback
def async_raise_delegation_broken(
    hass: HomeAssistant, entry_id: str, err: CertificateDelegationError
) -> None:
    """Show which CNAME record is wrong and what it must point to."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        delegation_issue_id(entry_id),
        is_fixable=False,
        is_persistent=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key="cname_delegation_broken",
        translation_placeholders={
            "record": err.record,
            "target": err.target,
            "records": ", ".join(err.records),
        },
    )


@callback
def async_clear_renewal_issues(
    hass: HomeAssistant, entry_id: str, *, failed: bool, delegation: bool
) -> None:
    """Delete the chosen issues of an entry (a no-op when they are not raised)."""
    if failed:
        ir.async_delete_issue(hass, DOMAIN, renewal_failed_issue_id(entry_id))
    if delegation:
        ir.async_delete_issue(hass, DOMAIN, delegation_issue_id(entry_id))
