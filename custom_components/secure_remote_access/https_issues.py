"""The Repairs issues of serving HTTPS: the trial, its revert, a pair nobody renews.

Ids come from `issues.https_trial_issue_id` / `issues.https_reverted_issue_id`
(entry removal deletes them there too); the installation-wide
``served_not_renewed`` outlives the last entry on purpose.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .issues import (
    HTTPS_RESTART_REFUSED,
    SERVED_NOT_RENEWED,
    _async_create,
    https_reverted_issue_id,
    https_trial_issue_id,
)


@callback
def async_raise_https_issue(
    hass: HomeAssistant,
    issue_id: str,
    translation_key: str,
    placeholders: dict[str, str],
    entry_id: str,
    created_at: str,
    *,
    fixable: bool = True,
) -> None:
    """Show the state of a trial http config (``created_at`` names which one)."""
    _async_create(
        hass,
        issue_id,
        translation_key,
        ir.IssueSeverity.WARNING,
        placeholders,
        fixable=fixable,
        data={"entry_id": entry_id, "created_at": created_at},
    )


@callback
def async_delete_https_issues(
    hass: HomeAssistant, entry_id: str, *, trial: bool, reverted: bool
) -> None:
    """Delete the chosen serving-HTTPS issues of an entry."""
    if trial:
        ir.async_delete_issue(hass, DOMAIN, https_trial_issue_id(entry_id))
    if reverted:
        ir.async_delete_issue(hass, DOMAIN, https_reverted_issue_id(entry_id))


@callback
def async_raise_served_not_renewed(
    hass: HomeAssistant, certificate: str, key: str, expiry: str, urls: str
) -> None:
    """Home Assistant serves a pair that no entry renews any more (persistent)."""
    _async_create(
        hass,
        SERVED_NOT_RENEWED,
        SERVED_NOT_RENEWED,
        ir.IssueSeverity.WARNING,
        {"certificate": certificate, "key": key, "date": expiry, "urls": urls},
        fixable=True,
        persistent=True,
        data={"certificate": certificate},
    )


def served_not_renewed_path(hass: HomeAssistant) -> str | None:
    """The certificate the served_not_renewed issue is about, if it is up."""
    issue = ir.async_get(hass).async_get_issue(DOMAIN, SERVED_NOT_RENEWED)
    if issue is None or not issue.data:
        return None
    return str(issue.data.get("certificate") or "") or None


@callback
def async_delete_served_not_renewed(hass: HomeAssistant) -> None:
    """The served certificate is renewed again, or no longer served."""
    ir.async_delete_issue(hass, DOMAIN, SERVED_NOT_RENEWED)


@callback
def async_raise_restart_refused(hass: HomeAssistant, error: str) -> None:
    """Home Assistant refused the restart: the change was withdrawn."""
    _async_create(
        hass,
        HTTPS_RESTART_REFUSED,
        HTTPS_RESTART_REFUSED,
        ir.IssueSeverity.WARNING,
        {"error": error},
    )


@callback
def async_delete_restart_refused(hass: HomeAssistant) -> None:
    """A new change is written: the last refusal is history."""
    ir.async_delete_issue(hass, DOMAIN, HTTPS_RESTART_REFUSED)
