"""Repairs issues and their fix flows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from homeassistant.components.repairs import (
    ConfirmRepairFlow,
    RepairsFlow,
    RepairsFlowResult,
)
from homeassistant.core import DOMAIN as HOMEASSISTANT_DOMAIN, HomeAssistant, callback
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceNotFound,
    ServiceValidationError,
)
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import probatio as vol

from .checklist.checks import CHECKS_BY_ID
from .checklist.runner import DATA_CHECKLIST
from .const import ATTR_CONFIG_ENTRY_ID, CONF_DOMAINS, CORE_DUCKDNS_DOMAIN, DOMAIN
from .https_flow import HttpsSteps, async_entry_to_serve, async_https_fix_flow
from .models import SecureRemoteAccessConfigEntry
from .monitor import CertificateKind, CertificateStatus, Problem, entry_monitors
from .protocol.duckdns import InvalidDomainError, normalize_domain
from .served import RESTART_REQUIRED


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


SERVICE_RENEW_CERTIFICATE: Final = "renew_certificate"
RENEW_ISSUES: Final = ("certificate_expiring", "renewal_failed")
SERVICE_HOMEASSISTANT_RESTART: Final = "restart"


def _matches(issue_id: str, base: str) -> bool:
    """``base`` itself, or ``base`` followed by ``_`` and an entry id."""
    return issue_id == base or issue_id.startswith(f"{base}_")


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """Pick the fix flow of an issue."""
    # Serving HTTPS (issue 18): its flows live in https_flow.py.
    if (https_flow := async_https_fix_flow(issue_id, data)) is not None:
        return https_flow
    if issue_id == HTTP_WITHOUT_TLS:
        return ServeHttpsChecklistFlow()
    if issue_id in CHECKS_BY_ID:
        return ChecklistRepairFlow()
    if _matches(issue_id, RESTART_REQUIRED):
        return RestartRepairFlow()
    for base in RENEW_ISSUES:
        if _matches(issue_id, base):
            entry_id = (data or {}).get(ATTR_CONFIG_ENTRY_ID) or (data or {}).get(
                "entry_id"
            )
            if entry_id is None and issue_id != base:
                entry_id = issue_id.removeprefix(f"{base}_")
            return RenewCertificateRepairFlow(
                None if entry_id is None else str(entry_id)
            )
    return ConfirmRepairFlow()


class _ConfirmFlow(RepairsFlow):
    """A confirm step that shows the issue's placeholders, then acts."""

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Go to the confirm step."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Show the steps; act when the user confirms."""
        if user_input is not None:
            return await self._async_act()
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema({}),
            description_placeholders=issue.translation_placeholders if issue else None,
        )

    async def _async_act(self) -> RepairsFlowResult:
        raise NotImplementedError


class ChecklistRepairFlow(_ConfirmFlow):
    """Show the exact steps, then check again.

    When the check passes now, the issue is gone and the flow finishes. When
    it still fails, the flow aborts, which leaves the issue in place.
    """

    async def _async_act(self) -> RepairsFlowResult:
        if (runner := self.hass.data.get(DATA_CHECKLIST)) is None:
            return self.async_abort(reason="no_entry_loaded")
        result = await runner.async_run()
        if self.issue_id in result.failing_ids:
            return self.async_abort(reason="still_failing")
        return self.async_create_entry(data={})


HTTP_WITHOUT_TLS: Final = "http_without_tls"


class ServeHttpsChecklistFlow(HttpsSteps[RepairsFlowResult], ChecklistRepairFlow):
    """http_without_tls: offer to serve the managed certificate, else check again."""

    async def _async_https_entry(self) -> SecureRemoteAccessConfigEntry | None:
        return await async_entry_to_serve(self)

    def _https_done(self) -> RepairsFlowResult:
        return self.async_create_entry(data={})

    async def _async_act(self) -> RepairsFlowResult:
        if await self._async_https_entry() is not None:
            return await self.async_step_serve_https()
        return await super()._async_act()


class RestartRepairFlow(_ConfirmFlow):
    """Restart Home Assistant so that it serves the new certificate."""

    async def _async_act(self) -> RepairsFlowResult:
        try:
            await self.hass.services.async_call(
                HOMEASSISTANT_DOMAIN, SERVICE_HOMEASSISTANT_RESTART, blocking=True
            )
        except ServiceNotFound:
            return self.async_abort(reason="restart_unavailable")
        return self.async_create_entry(data={})


class RenewCertificateRepairFlow(_ConfirmFlow):
    """Renew an entry's certificate now through the renew_certificate action."""

    def __init__(self, entry_id: str | None) -> None:
        """Remember which entry's certificate to renew."""
        self.entry_id = entry_id

    async def _async_act(self) -> RepairsFlowResult:
        if self.entry_id is None or not self.hass.services.has_service(
            DOMAIN, SERVICE_RENEW_CERTIFICATE
        ):
            return self.async_abort(reason="renew_unavailable")
        try:
            await self.hass.services.async_call(
                DOMAIN,
                SERVICE_RENEW_CERTIFICATE,
                {ATTR_CONFIG_ENTRY_ID: self.entry_id},
                blocking=True,
            )
        except ServiceValidationError:
            # The entry is not loaded or does not manage a certificate.
            return self.async_abort(reason="renew_unavailable")
        except HomeAssistantError as err:
            return self.async_abort(
                reason="renew_failed", description_placeholders={"error": str(err)}
            )
        return self.async_create_entry(data={})
