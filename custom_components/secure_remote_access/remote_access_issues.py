"""The Repairs issues of the remote-access check: one per finding of an entry.

Ids come from `issues.remote_access_issue_id` (entry removal deletes them
there too); this module raises and clears them after each check.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .issues import _async_create, remote_access_issue_id
from .protocol.remote_access import Finding

#: The findings whose forwards a fix flow can remove on the router.
REMOVABLE_FINDINGS: frozenset[Finding] = frozenset(
    {
        Finding.PLAIN_HTTP_FORWARDED,
        Finding.SSH_FORWARDED_WITH_PASSWORD,
        Finding.PORT_80_FORWARDED,
    }
)
REMOTE_ACCESS_SEVERITY: dict[Finding, ir.IssueSeverity] = {
    Finding.CARRIER_GRADE_NAT: ir.IssueSeverity.WARNING,
    Finding.PLAIN_HTTP_FORWARDED: ir.IssueSeverity.CRITICAL,
    Finding.PORT_80_FORWARDED: ir.IssueSeverity.WARNING,
    Finding.SSH_FORWARDED_WITH_PASSWORD: ir.IssueSeverity.ERROR,
    Finding.DNS_MISMATCH: ir.IssueSeverity.ERROR,
    Finding.NO_PORT_FORWARD: ir.IssueSeverity.WARNING,
}


@callback
def async_sync_remote_access_issues(
    hass: HomeAssistant,
    entry_id: str,
    findings: Mapping[Finding, Mapping[str, str]],
    evaluated: Collection[Finding],
) -> None:
    """One issue per finding of the latest check; the others it evaluated go.

    A finding the check could not evaluate (no gateway, no DNS answer) keeps
    its issue, across restarts too (persistent): a router that does not answer
    has not closed its port forward. After a day without answer the judgement
    evaluates the router's findings again, and their issues go.
    """
    for finding in evaluated:
        issue_id = remote_access_issue_id(finding, entry_id)
        if (placeholders := findings.get(finding)) is None:
            ir.async_delete_issue(hass, DOMAIN, issue_id)
            continue
        _async_create(
            hass,
            issue_id,
            finding.value,
            REMOTE_ACCESS_SEVERITY[finding],
            dict(placeholders),
            persistent=True,
            # Their fix flow offers "Remove this forward" (forward_cleanup_flow.py).
            # no_port_forward's offers "Forward HTTPS from the internet".
            fixable=finding in REMOVABLE_FINDINGS or finding is Finding.NO_PORT_FORWARD,
        )


@callback
def async_router_issues_raised(hass: HomeAssistant, entry_id: str) -> bool:
    """Whether an issue only a router's answer can raise is open for the entry
    (a router answered once, maybe before the check kept a memory)."""
    registry = ir.async_get(hass)
    return any(
        registry.async_get_issue(DOMAIN, remote_access_issue_id(finding, entry_id))
        for finding in Finding
        if finding is not Finding.DNS_MISMATCH
    )
