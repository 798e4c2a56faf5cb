"""The one home of Repairs issues: ids stay as users' registries store them."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.secure_remote_access.checklist.checks import CHECK_IDS
from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.issues import (
    CERTIFICATE_EXPIRING,
    RENEWAL_FAILED,
    RESTART_REQUIRED,
    async_delete_entry_issues,
    async_delete_installation_issues,
    certificate_issue_id,
    delegation_issue_id,
    duplicate_updater_issue_id,
    issue_entry_id,
    renewal_failed_issue_id,
)
from tests.translations_guard import issue_placeholders, strings


def test_issue_ids_are_the_persisted_ones() -> None:
    """The ids users' registries hold, byte for byte."""
    assert renewal_failed_issue_id("E1") == "renewal_failed_E1"
    assert delegation_issue_id("E1") == "cname_delegation_broken_E1"
    assert duplicate_updater_issue_id("E1") == "duplicate_duckdns_updater_E1"
    assert (
        certificate_issue_id(CERTIFICATE_EXPIRING, "E1", "endpoint_a.test:443")
        == "certificate_expiring_E1_endpoint_a.test:443"
    )
    assert issue_entry_id("renewal_failed_E1", RENEWAL_FAILED) == "E1"
    assert issue_entry_id(RESTART_REQUIRED, RESTART_REQUIRED) == ""
    assert issue_entry_id("renewal_failedE1", RENEWAL_FAILED) is None


def _raise(hass: HomeAssistant, issue_id: str) -> None:
    """Create an issue as its kind would (the kind: the start of its id)."""
    key = max((key for key in strings()["issues"] if issue_id.startswith(key)), key=len)
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable="fix_flow" in strings()["issues"][key],
        severity=ir.IssueSeverity.WARNING,
        translation_key=key,
        translation_placeholders=issue_placeholders(key),
    )


def _issue_ids(hass: HomeAssistant) -> set[str]:
    return {
        issue_id for domain, issue_id in ir.async_get(hass).issues if domain == DOMAIN
    }


async def test_delete_entry_issues_keeps_other_entries_and_the_installation(
    hass: HomeAssistant,
) -> None:
    """Removing an entry deletes its issues of every kind, and only those."""
    ids = {
        entry_id: {
            renewal_failed_issue_id(entry_id),
            delegation_issue_id(entry_id),
            duplicate_updater_issue_id(entry_id),
            certificate_issue_id(CERTIFICATE_EXPIRING, entry_id, "managed"),
            certificate_issue_id("certificate_expired", entry_id, "endpoint_a.test:1"),
        }
        for entry_id in ("E1", "E2")
    }
    installation = {RESTART_REQUIRED, CHECK_IDS[0]}
    for issue_id in {*ids["E1"], *ids["E2"], *installation}:
        _raise(hass, issue_id)

    async_delete_entry_issues(hass, "E1")
    assert _issue_ids(hass) == ids["E2"] | installation

    async_delete_installation_issues(hass)
    assert _issue_ids(hass) == ids["E2"]
