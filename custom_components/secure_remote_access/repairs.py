"""Repairs issues and their fix flows."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .const import CONF_DOMAINS, CORE_DUCKDNS_DOMAIN, DOMAIN
from .models import SecureRemoteAccessConfigEntry
from .monitor import CertificateKind, CertificateStatus, Problem, entry_monitors
from .protocol.duckdns import InvalidDomainError, normalize_domain


@callback
def async_check_duplicate_updater(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> None:
    """Warn when core's duckdns integration updates one of the entry's names too."""
    ours = set(entry.data[CONF_DOMAINS])
    shared: set[str] = set()
    for other in hass.config_entries.async_entries(CORE_DUCKDNS_DOMAIN):
        raw = str(other.data.get("domain", ""))
        try:
            name = normalize_domain(raw)
        except InvalidDomainError:
            continue
        if name in ours:
            shared.add(name)
    issue_id = f"duplicate_duckdns_updater_{entry.entry_id}"
    if shared:
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="duplicate_duckdns_updater",
            translation_placeholders={"names": ", ".join(sorted(shared))},
        )
    else:
        ir.async_delete_issue(hass, DOMAIN, issue_id)


# Certificate issues: at most one per certificate, the first of its problems
# that has an issue. Problems missing here (unreachable endpoints, untrusted
# chains...) show on the certificate's problem binary sensor only.
CERTIFICATE_ISSUES: dict[Problem, tuple[str, ir.IssueSeverity]] = {
    Problem.NOT_FOUND: ("certificate_unreadable", ir.IssueSeverity.ERROR),
    Problem.PERMISSION_DENIED: ("certificate_unreadable", ir.IssueSeverity.ERROR),
    Problem.EMPTY: ("certificate_unreadable", ir.IssueSeverity.ERROR),
    Problem.INVALID_FORMAT: ("certificate_unreadable", ir.IssueSeverity.ERROR),
    Problem.UNREADABLE: ("certificate_unreadable", ir.IssueSeverity.ERROR),
    Problem.KEY_UNREADABLE: ("certificate_unreadable", ir.IssueSeverity.ERROR),
    Problem.KEY_MISMATCH: ("certificate_key_mismatch", ir.IssueSeverity.ERROR),
    Problem.EXPIRED: ("certificate_expired", ir.IssueSeverity.CRITICAL),
    Problem.NAME_MISMATCH: ("certificate_name_mismatch", ir.IssueSeverity.ERROR),
    Problem.EXPIRING: ("certificate_expiring", ir.IssueSeverity.WARNING),
}
CERTIFICATE_ISSUE_KEYS = (
    "certificate_unreadable",
    "certificate_key_mismatch",
    "certificate_expired",
    "certificate_name_mismatch",
    "certificate_expiring",
)
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


def certificate_issue_id(translation_key: str, entry_id: str, key: str) -> str:
    """The issue ID of one kind of issue about one certificate of an entry."""
    return f"{translation_key}_{entry_id}_{key}"


@dataclass(frozen=True, slots=True)
class _IssueSpec:
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
        translation_key, severity = CERTIFICATE_ISSUES[problem]
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
        return _IssueSpec(
            translation_key,
            severity,
            placeholders,
            fixable=(
                problem is Problem.EXPIRING and source.kind is CertificateKind.MANAGED
            ),
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
    for monitor in entry_monitors(entry.runtime_data):
        for key in monitor.sources:
            if (status := monitor.status(key, now)) is None:
                keep |= {
                    certificate_issue_id(translation_key, entry.entry_id, key)
                    for translation_key in CERTIFICATE_ISSUE_KEYS
                }
            elif (spec := _issue_for(entry, status)) is not None:
                issue_id = certificate_issue_id(
                    spec.translation_key, entry.entry_id, key
                )
                wanted[issue_id] = (key, spec)
    for issue_id in _certificate_issue_ids(hass, entry.entry_id):
        if issue_id not in wanted and issue_id not in keep:
            ir.async_delete_issue(hass, DOMAIN, issue_id)
    for issue_id, (key, spec) in wanted.items():
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue_id,
            is_fixable=spec.fixable,
            severity=spec.severity,
            translation_key=spec.translation_key,
            translation_placeholders=spec.placeholders,
            data={"entry_id": entry.entry_id, "certificate": key}
            if spec.fixable
            else None,
        )


def _certificate_issue_ids(hass: HomeAssistant, entry_id: str) -> list[str]:
    prefixes = tuple(
        f"{translation_key}_{entry_id}_" for translation_key in CERTIFICATE_ISSUE_KEYS
    )
    return [
        issue_id
        for domain, issue_id in ir.async_get(hass).issues
        if domain == DOMAIN and issue_id.startswith(prefixes)
    ]


@callback
def async_delete_certificate_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Forget every certificate issue of a deleted entry."""
    for issue_id in _certificate_issue_ids(hass, entry_id):
        ir.async_delete_issue(hass, DOMAIN, issue_id)
