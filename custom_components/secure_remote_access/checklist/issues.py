"""The one place that synchronises the checklist's Repairs issues.

Each check has one issue whose id is the check id. A failing check creates or
updates its issue; a passing or disabled check deletes it. Re-creating an
issue keeps the ``dismissed_version`` the issue registry stored, so an issue
the user ignored stays ignored while the finding persists.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from custom_components.secure_remote_access.const import DOMAIN

from .checks import CHECK_IDS, CHECKS
from .models import ChecklistResult


@callback
def async_sync_issues(hass: HomeAssistant, result: ChecklistResult) -> None:
    """Create, update or delete the issue of every registered check."""
    for spec in CHECKS:
        finding = result.finding(spec.check_id)
        if finding is None:
            ir.async_delete_issue(hass, DOMAIN, spec.check_id)
            continue
        ir.async_create_issue(
            hass,
            DOMAIN,
            spec.check_id,
            is_fixable=True,
            is_persistent=False,
            learn_more_url=spec.learn_more_url,
            severity=ir.IssueSeverity(finding.severity.value),
            translation_key=spec.check_id,
            translation_placeholders=dict(finding.placeholders),
        )


@callback
def async_delete_checklist_issues(hass: HomeAssistant) -> None:
    """Remove every checklist issue (the integration's last entry is gone)."""
    for check_id in CHECK_IDS:
        ir.async_delete_issue(hass, DOMAIN, check_id)
