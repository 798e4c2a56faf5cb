"""The Repairs issues of the certificates an entry watches: one per certificate.

Ids come from `issues.certificate_issue_id` (entry removal deletes them there
too); the monitors' listeners sync them from `status.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .issues import (
    CERTIFICATE_EXPIRED,
    CERTIFICATE_EXPIRING,
    CERTIFICATE_ISSUE_KEYS,
    CERTIFICATE_KEY_MISMATCH,
    CERTIFICATE_NAME_MISMATCH,
    CERTIFICATE_UNREADABLE,
    MANAGED_CERTIFICATE_EXPIRING,
    _async_create,
    _certificate_issue_ids,
    certificate_issue_id,
)
from .models import SecureRemoteAccessConfigEntry
from .status import CertificateKind, CertificateStatus, Problem

# At most one issue per certificate, the first of its problems that has an
# issue. Problems missing here (unreachable endpoints, untrusted chains...)
# show on the certificate's problem binary sensor only.
CERTIFICATE_ISSUES: dict[Problem, tuple[str, ir.IssueSeverity]] = {
    Problem.NOT_FOUND: (CERTIFICATE_UNREADABLE, ir.IssueSeverity.ERROR),
    Problem.PERMISSION_DENIED: (CERTIFICATE_UNREADABLE, ir.IssueSeverity.ERROR),
    Problem.EMPTY: (CERTIFICATE_UNREADABLE, ir.IssueSeverity.ERROR),
    Problem.INVALID_FORMAT: (CERTIFICATE_UNREADABLE, ir.IssueSeverity.ERROR),
    Problem.UNREADABLE: (CERTIFICATE_UNREADABLE, ir.IssueSeverity.ERROR),
    Problem.KEY_UNREADABLE: (CERTIFICATE_UNREADABLE, ir.IssueSeverity.ERROR),
    Problem.KEY_MISMATCH: (CERTIFICATE_KEY_MISMATCH, ir.IssueSeverity.ERROR),
    Problem.EXPIRED: (CERTIFICATE_EXPIRED, ir.IssueSeverity.CRITICAL),
    Problem.NAME_MISMATCH: (CERTIFICATE_NAME_MISMATCH, ir.IssueSeverity.ERROR),
    Problem.EXPIRING: (CERTIFICATE_EXPIRING, ir.IssueSeverity.WARNING),
}
_LOCAL_ONLY = frozenset(
    {
        Problem.NOT_FOUND,
        Problem.PERMISSION_DENIED,
        Problem.EMPTY,
        Problem.INVALID_FORMAT,
        Problem.UNREADABLE,
        Problem.KEY_UNREADABLE,
    }
)


@dataclass(frozen=True, slots=True)
class _IssueSpec:
    kind: str  # the start of the issue id
    translation_key: str
    severity: ir.IssueSeverity
    placeholders: dict[str, str]
    fixable: bool


def _issue_for(
    entry: SecureRemoteAccessConfigEntry, status: CertificateStatus
) -> _IssueSpec | None:
    source = status.source
    for problem in status.problems:
        if problem not in CERTIFICATE_ISSUES:
            continue
        if source.kind is CertificateKind.ENDPOINT and problem in _LOCAL_ONLY:
            continue
        if source.kind is CertificateKind.MANAGED and problem is Problem.NOT_FOUND:
            continue  # not issued yet: obtaining it is the renewal's job
        kind, severity = CERTIFICATE_ISSUES[problem]
        info = status.info
        placeholders = {
            "certificate": source.name,
            "entry": entry.title,
            "date": f"{info.not_after:%Y-%m-%d %H:%M} UTC" if info else "-",
            "days": str(status.days_remaining) if info else "-",
            "names": ", ".join(status.missing_names) or "-",
            "key": source.key_path or "-",
            "detail": status.observation.detail or problem.value,
        }
        fixable = problem is Problem.EXPIRING and source.kind is CertificateKind.MANAGED
        return _IssueSpec(
            kind,
            # The managed certificate's is fixable (renew now): its own text.
            MANAGED_CERTIFICATE_EXPIRING if fixable else kind,
            severity,
            placeholders,
            fixable=fixable,
        )
    return None


@callback
def async_sync_certificate_issues(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> None:
    """Create, update and delete the entry's certificate issues in one place.

    Certificates not observed yet keep their issues; issues of certificates
    that are no longer monitored go away.
    """
    now = dt_util.utcnow()
    wanted: dict[str, tuple[str, _IssueSpec]] = {}
    keep: set[str] = set()
    for monitor in entry.runtime_data.monitors:
        for key in monitor.sources:
            if (status := monitor.status(key, now)) is None:
                keep |= {
                    certificate_issue_id(translation_key, entry.entry_id, key)
                    for translation_key in CERTIFICATE_ISSUE_KEYS
                }
            elif (spec := _issue_for(entry, status)) is not None:
                issue_id = certificate_issue_id(spec.kind, entry.entry_id, key)
                wanted[issue_id] = (key, spec)
    for issue_id in _certificate_issue_ids(hass, entry.entry_id):
        if issue_id not in wanted and issue_id not in keep:
            ir.async_delete_issue(hass, DOMAIN, issue_id)
    for issue_id, (key, spec) in wanted.items():
        _async_create(
            hass,
            issue_id,
            spec.translation_key,
            spec.severity,
            spec.placeholders,
            fixable=spec.fixable,
            data={"entry_id": entry.entry_id, "certificate": key}
            if spec.fixable
            else None,
        )
