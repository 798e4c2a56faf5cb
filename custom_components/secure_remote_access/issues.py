"""Every Repairs issue the integration raises: ids, create, delete.

Issue ids are persisted in users' issue registries (a dismissed issue stays
dismissed by id): never change how one is built. Each kind's translation key
is also the start of its id (except the fixable variant of an expiring
certificate's issue, MANAGED_CERTIFICATE_EXPIRING).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .certificate import (
    CERTIFICATE_PATH_NOT_ALLOWED,
    CertificateDelegationError,
    CertificateRenewalError,
    CertificateTermsError,
)
from .checklist.checks import CHECK_IDS, CHECKS
from .checklist.models import ChecklistResult
from .const import CONF_DOMAINS, CORE_DUCKDNS_DOMAIN, DOMAIN
from .models import SecureRemoteAccessConfigEntry
from .protocol.names import InvalidDomainError, normalize_duckdns_domain
from .protocol.remote_access import Finding

RENEWAL_FAILED: Final = "renewal_failed"
#: renewal_failed's variant when a path leads outside the allowed folders.
RENEWAL_PATH_NOT_ALLOWED: Final = CERTIFICATE_PATH_NOT_ALLOWED
ACCOUNT_TERMS_CHANGED: Final = "account_terms_changed"
#: The same issue for an account whose accepted terms were never recorded.
ACCOUNT_TERMS_UNCONFIRMED: Final = "account_terms_unconfirmed"
CNAME_DELEGATION_BROKEN: Final = "cname_delegation_broken"
PERSIST_RECORD_LEFT: Final = "persist_record_left"
PORT_FORWARD_LEFT: Final = "port_forward_left"
DUPLICATE_DUCKDNS_UPDATER: Final = "duplicate_duckdns_updater"
RESTART_REQUIRED: Final = "restart_required"
HTTPS_TRIAL: Final = "https_trial"
HTTPS_REVERTED: Final = "https_reverted"
HTTPS_RESTART_REFUSED: Final = "https_restart_refused"
SERVED_NOT_RENEWED: Final = "served_not_renewed"
PROXY_RESTART_FAILED: Final = "proxy_restart_failed"
CERTIFICATE_UNREADABLE: Final = "certificate_unreadable"
CERTIFICATE_KEY_MISMATCH: Final = "certificate_key_mismatch"
CERTIFICATE_EXPIRED: Final = "certificate_expired"
CERTIFICATE_NAME_MISMATCH: Final = "certificate_name_mismatch"
CERTIFICATE_EXPIRING: Final = "certificate_expiring"
# The managed certificate's expiry issue renews it (a fix flow): its own text,
# the id of the certificate_expiring kind.
MANAGED_CERTIFICATE_EXPIRING: Final = "managed_certificate_expiring"


# ------------------------------------------------------------------------ ids


def _entry_issue_id(kind: str, entry_id: str) -> str:
    return f"{kind}_{entry_id}"


def renewal_failed_issue_id(entry_id: str) -> str:
    """The issue raised while renewals of an entry fail."""
    return _entry_issue_id(RENEWAL_FAILED, entry_id)


def terms_issue_id(entry_id: str) -> str:
    """The issue raised while a lost account waits for new terms to be accepted."""
    return _entry_issue_id(ACCOUNT_TERMS_CHANGED, entry_id)


def delegation_issue_id(entry_id: str) -> str:
    """The issue raised while a CNAME delegation of an entry is broken."""
    return _entry_issue_id(CNAME_DELEGATION_BROKEN, entry_id)


def duplicate_updater_issue_id(entry_id: str) -> str:
    """The issue raised while core's duckdns updates one of the entry's names."""
    return _entry_issue_id(DUPLICATE_DUCKDNS_UPDATER, entry_id)


def https_trial_issue_id(entry_id: str) -> str:
    """The "Keep serving HTTPS?" issue of an entry (or its variants' shared id)."""
    return _entry_issue_id(HTTPS_TRIAL, entry_id)


def https_reverted_issue_id(entry_id: str) -> str:
    """The issue that explains a reverted http change of an entry."""
    return _entry_issue_id(HTTPS_REVERTED, entry_id)


def proxy_restart_issue_id(entry_id: str) -> str:
    """The issue raised when the entry's proxy add-on could not be restarted."""
    return _entry_issue_id(PROXY_RESTART_FAILED, entry_id)


def remote_access_issue_id(finding: Finding, entry_id: str) -> str:
    """The issue of one remote-access finding of an entry."""
    return _entry_issue_id(finding.value, entry_id)


def certificate_issue_id(translation_key: str, entry_id: str, key: str) -> str:
    """The issue of one kind about one certificate (``key``) of an entry."""
    return f"{_entry_issue_id(translation_key, entry_id)}_{key}"


def issue_entry_id(issue_id: str, kind: str) -> str | None:
    """The entry id in an issue id of ``kind``; None for another kind.

    ``kind`` itself (an id without entry) gives an empty string.
    """
    if issue_id == kind:
        return ""
    prefix = f"{kind}_"
    return issue_id.removeprefix(prefix) if issue_id.startswith(prefix) else None


# --------------------------------------------------------- create, delete


def _async_create(
    hass: HomeAssistant,
    issue_id: str,
    translation_key: str,
    severity: ir.IssueSeverity,
    placeholders: dict[str, str],
    *,
    fixable: bool = False,
    persistent: bool = False,
    data: dict[str, str | int | float | None] | None = None,
    learn_more_url: str | None = None,
) -> None:
    """Create or update an issue; one that the user ignored stays ignored.

    ``persistent``: restored after a restart, for issues whose next check may
    be a day away; the code that raises them deletes them when they no longer
    hold.
    """
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=fixable,
        is_persistent=persistent,
        learn_more_url=learn_more_url,
        severity=severity,
        translation_key=translation_key,
        translation_placeholders=placeholders,
        data=data,
    )


# ------------------------------------------------------------------- entries


@callback
def async_delete_entry_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Delete every issue of one entry (it was removed)."""
    for issue_id in (
        duplicate_updater_issue_id(entry_id),
        renewal_failed_issue_id(entry_id),
        terms_issue_id(entry_id),
        delegation_issue_id(entry_id),
        https_trial_issue_id(entry_id),
        https_reverted_issue_id(entry_id),
        proxy_restart_issue_id(entry_id),
        *_certificate_issue_ids(hass, entry_id),
        *(remote_access_issue_id(finding, entry_id) for finding in Finding),
    ):
        ir.async_delete_issue(hass, DOMAIN, issue_id)


@callback
def async_delete_installation_issues(hass: HomeAssistant) -> None:
    """Delete the installation's issues (the last entry was removed)."""
    for issue_id in (*CHECK_IDS, RESTART_REQUIRED):
        ir.async_delete_issue(hass, DOMAIN, issue_id)


# ------------------------------------------------------------------ DuckDNS


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
            name = normalize_duckdns_domain(raw)
        except InvalidDomainError:
            continue
        if name in ours:
            shared.add(name)
    issue_id = duplicate_updater_issue_id(entry.entry_id)
    if shared:
        _async_create(
            hass,
            issue_id,
            DUPLICATE_DUCKDNS_UPDATER,
            ir.IssueSeverity.WARNING,
            {"names": ", ".join(sorted(shared))},
        )
    else:
        ir.async_delete_issue(hass, DOMAIN, issue_id)


@callback
def async_raise_persist_record_left(hass: HomeAssistant, domain: str) -> None:
    """A removed entry could not clear the dns-persist-01 record of ``domain``."""
    _async_create(
        hass,
        f"{PERSIST_RECORD_LEFT}_{domain}",
        PERSIST_RECORD_LEFT,
        ir.IssueSeverity.WARNING,
        {"domain": domain},
        persistent=True,
    )


@callback
def async_raise_port_forward_left(
    hass: HomeAssistant, entry_id: str, forward: dict[str, str | int]
) -> None:
    """A removed entry's port forward could not be removed from the router.

    Its fix flow tries again (``forward`` is the keeper's stored form).
    """
    _async_create(
        hass,
        f"{PORT_FORWARD_LEFT}_{entry_id}_{forward['external_port']}",
        PORT_FORWARD_LEFT,
        ir.IssueSeverity.WARNING,
        {
            "external_port": str(forward["external_port"]),
            "internal_client": str(forward["internal_client"]),
            "internal_port": str(forward["internal_port"]),
            "description": str(forward["description"]),
        },
        fixable=True,
        persistent=True,
        data=dict(forward),
    )


@callback
def async_delete_persist_record_left(
    hass: HomeAssistant, domains: Sequence[str]
) -> None:
    """An entry for these names owns their TXT value again."""
    for domain in domains:
        ir.async_delete_issue(hass, DOMAIN, f"{PERSIST_RECORD_LEFT}_{domain}")


# ------------------------------------------------------------------ renewal


@callback
def async_raise_renewal_issue(
    hass: HomeAssistant,
    entry_id: str,
    err: CertificateRenewalError,
    names: Sequence[str],
    next_attempt: datetime,
    *,
    delegations_verified: bool | None,
) -> None:
    """Show a failed renewal: a broken delegation says exactly what to do.

    A broken delegation replaces the renewal_failed issue. Any other failure
    deletes the delegation issue only when the latest delegation check
    (``delegations_verified``) passed: a failure before it says nothing.
    """
    if isinstance(err, CertificateDelegationError):
        async_delete_renewal_failed_issue(hass, entry_id)
        async_raise_delegation_broken(hass, entry_id, err)
        return
    if isinstance(err, CertificateTermsError):
        async_delete_renewal_failed_issue(hass, entry_id)
        _async_create(
            hass,
            terms_issue_id(entry_id),
            ACCOUNT_TERMS_CHANGED if err.accepted_known else ACCOUNT_TERMS_UNCONFIRMED,
            ir.IssueSeverity.ERROR,
            {"directory": err.directory_url, "terms": err.terms, "detail": err.detail},
            fixable=True,
            persistent=True,
            data={"entry_id": entry_id, "account": err.account_url or ""},
        )
        return
    if delegations_verified:
        async_delete_delegation_issue(hass, entry_id)
    # A path outside the allowed folders explains itself (same issue id and fix flow).
    own = err.translation_key == RENEWAL_PATH_NOT_ALLOWED
    _async_create(
        hass,
        renewal_failed_issue_id(entry_id),
        RENEWAL_PATH_NOT_ALLOWED if own else RENEWAL_FAILED,
        ir.IssueSeverity.ERROR,
        {
            **(err.translation_placeholders or {} if own else {}),
            "names": ", ".join(names),
            "detail": err.detail,
            "next_attempt": dt_util.as_local(next_attempt).strftime("%Y-%m-%d %H:%M"),
        },
        fixable=True,
        persistent=True,
        data={"entry_id": entry_id},
    )


@callback
def async_raise_delegation_broken(
    hass: HomeAssistant, entry_id: str, err: CertificateDelegationError
) -> None:
    """Show which CNAME record is wrong and what it must point to."""
    _async_create(
        hass,
        delegation_issue_id(entry_id),
        CNAME_DELEGATION_BROKEN,
        ir.IssueSeverity.ERROR,
        {"record": err.record, "target": err.target, "records": ", ".join(err.records)},
        persistent=True,
    )


@callback
def async_delete_renewal_failed_issue(hass: HomeAssistant, entry_id: str) -> None:
    """Renewing works (again): the account works too."""
    ir.async_delete_issue(hass, DOMAIN, renewal_failed_issue_id(entry_id))
    ir.async_delete_issue(hass, DOMAIN, terms_issue_id(entry_id))


@callback
def async_delete_delegation_issue(hass: HomeAssistant, entry_id: str) -> None:
    """The delegations work, or nothing is delegated any more."""
    ir.async_delete_issue(hass, DOMAIN, delegation_issue_id(entry_id))


# ------------------------------------------------------------------ serving


@callback
def async_raise_restart_required(hass: HomeAssistant, path: str) -> None:
    """The served certificate changed and only a restart serves it (fixable)."""
    _async_create(
        hass,
        RESTART_REQUIRED,
        RESTART_REQUIRED,
        ir.IssueSeverity.WARNING,
        {"path": path},
        fixable=True,
    )


@callback
def async_delete_restart_required(hass: HomeAssistant) -> None:
    """The server presents the certificate on disk."""
    ir.async_delete_issue(hass, DOMAIN, RESTART_REQUIRED)


# -------------------------------------------------------------- checklist


@callback
def async_sync_checklist_issues(hass: HomeAssistant, result: ChecklistResult) -> None:
    """Create, update or delete the issue of every registered check.

    The issue id is the check id. Re-creating an issue keeps the
    ``dismissed_version`` the registry stored, so an issue the user ignored
    stays ignored while the finding persists.
    """
    for spec in CHECKS:
        finding = result.finding(spec.check_id)
        if finding is None:
            ir.async_delete_issue(hass, DOMAIN, spec.check_id)
            continue
        _async_create(
            hass,
            spec.check_id,
            spec.check_id,
            ir.IssueSeverity(finding.severity.value),
            dict(finding.placeholders),
            fixable=True,
            learn_more_url=spec.learn_more_url,
        )


# ----------------------------------------------------------- certificates

CERTIFICATE_ISSUE_KEYS = (
    CERTIFICATE_UNREADABLE,
    CERTIFICATE_KEY_MISMATCH,
    CERTIFICATE_EXPIRED,
    CERTIFICATE_NAME_MISMATCH,
    CERTIFICATE_EXPIRING,
)


def _certificate_issue_ids(hass: HomeAssistant, entry_id: str) -> list[str]:
    """The certificate issues of an entry in the registry, whatever their key."""
    prefixes = tuple(
        certificate_issue_id(translation_key, entry_id, "")
        for translation_key in CERTIFICATE_ISSUE_KEYS
    )
    return [
        issue_id
        for domain, issue_id in ir.async_get(hass).issues
        if domain == DOMAIN and issue_id.startswith(prefixes)
    ]
