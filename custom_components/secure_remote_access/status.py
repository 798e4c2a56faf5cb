"""The judgement of a certificate: what is wrong with it, and until when.

Pure: no I/O and no coordinator. `evaluate` judges an observation (a file
read or a handshake) at one instant, `next_transition` says when that
judgement changes next, so that entities and Repairs stay right between reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .protocol.endpoint_list import EndpointOption
from .protocol.tls import EndpointCertificate
from .protocol.x509 import (
    CertificateError,
    CertificateInfo,
    EndpointError,
    PairInfo,
    VerificationStatus,
)


class CertificateKind(StrEnum):
    """Where a monitored certificate comes from."""

    MANAGED = "managed"
    """The certificate this entry obtains and renews."""
    SERVED = "served"
    """The certificate Home Assistant's web server uses (http ssl_certificate)."""
    ENDPOINT = "endpoint"
    """A remote TLS endpoint listed in the options."""


class Problem(StrEnum):
    """What is wrong with a certificate, most important first.

    The values are the binary sensor's ``reason`` attribute states (translated).
    """

    NOT_FOUND = "not_found"
    PERMISSION_DENIED = "permission_denied"
    EMPTY = "empty"
    INVALID_FORMAT = "invalid_format"
    UNREADABLE = "unreadable"
    KEY_UNREADABLE = "key_unreadable"
    KEY_MISMATCH = "key_mismatch"
    NAME_RESOLUTION_FAILED = "name_resolution_failed"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    CONNECTION_FAILED = "connection_failed"
    TIMEOUT = "timeout"
    HANDSHAKE_FAILED = "handshake_failed"
    NO_CERTIFICATE = "no_certificate"
    CA_BUNDLE_UNREADABLE = "ca_bundle_unreadable"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    NAME_MISMATCH = "name_mismatch"
    SELF_SIGNED = "self_signed"
    UNTRUSTED = "untrusted"
    VERIFICATION_FAILED = "verification_failed"
    CHAIN_INVALID = "chain_invalid"
    EXPIRING = "expiring"


#: The ``reason`` attribute while nothing is wrong, and while the managed
#: certificate is being obtained for the first time.
REASON_OK = "ok"
REASON_NOT_ISSUED_YET = "not_issued_yet"
_PRIORITY = {problem: index for index, problem in enumerate(Problem)}
_FILE_PROBLEMS = {
    "not_found": Problem.NOT_FOUND,
    "permission_denied": Problem.PERMISSION_DENIED,
    "empty": Problem.EMPTY,
    "invalid_format": Problem.INVALID_FORMAT,
}
_ENDPOINT_PROBLEMS = {
    problem.value: problem
    for problem in (
        Problem.NAME_RESOLUTION_FAILED,
        Problem.CONNECTION_REFUSED,
        Problem.CONNECTION_RESET,
        Problem.CONNECTION_FAILED,
        Problem.TIMEOUT,
        Problem.HANDSHAKE_FAILED,
        Problem.NO_CERTIFICATE,
    )
}
_VERIFICATION_PROBLEMS = {
    VerificationStatus.SELF_SIGNED: Problem.SELF_SIGNED,
    VerificationStatus.UNKNOWN_ISSUER: Problem.UNTRUSTED,
    # Judged on our own clock and names; OpenSSL's verdict only adds
    # VERIFICATION_FAILED when ours disagrees (an expired intermediate...).
    VerificationStatus.EXPIRED: Problem.EXPIRED,
    VerificationStatus.NOT_YET_VALID: Problem.NOT_YET_VALID,
    VerificationStatus.NAME_MISMATCH: Problem.NAME_MISMATCH,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateSource:
    """A certificate to watch."""

    key: str
    """``managed``, ``served`` or ``endpoint_<host:port>``; part of unique IDs."""
    kind: CertificateKind
    name: str
    """What users know it by: the certificate file's path, or ``host:port``."""
    certificate_path: str | None = None
    key_path: str | None = None
    expected_names: tuple[str, ...] = ()
    endpoint: EndpointOption | None = None
    served: bool = False
    """The managed certificate is also the one Home Assistant serves."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """What the last read or handshake found (no secrets)."""

    info: CertificateInfo | None = None
    error: Problem | None = None
    detail: str | None = None
    key_matches: bool | None = None
    key_unreadable: bool = False
    verification: VerificationStatus | None = None
    verification_message: str | None = None
    address: str | None = None
    tls_version: str | None = None


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    """An observation judged at one instant.

    ``pending`` is true while the managed certificate has not been obtained
    yet: not a problem, the renewal is about to obtain it.
    """

    source: CertificateSource
    observation: Observation
    problems: tuple[Problem, ...]
    days_remaining: int | None
    missing_names: tuple[str, ...] = ()
    pending: bool = False

    @property
    def info(self) -> CertificateInfo | None:
        """The certificate, when one could be read."""
        return self.observation.info

    @property
    def reason(self) -> Problem | None:
        """The most important problem, None when all is well."""
        return self.problems[0] if self.problems else None


def warning_window(info: CertificateInfo, warning_days: int) -> timedelta:
    """How long before expiry a certificate counts as expiring.

    The configured days, but at most a third of the certificate's lifetime:
    a 6-day certificate is not "expiring" from the moment it is issued.
    """
    return min(timedelta(days=warning_days), (info.not_after - info.not_before) / 3)


def evaluate(
    source: CertificateSource,
    observation: Observation,
    now: datetime,
    warning_days: int,
) -> CertificateStatus:
    """Judge an observation at ``now``."""
    problems: set[Problem] = set()
    pending = (
        source.kind is CertificateKind.MANAGED
        and observation.error is Problem.NOT_FOUND
    )
    if observation.error is not None and not pending:
        problems.add(observation.error)
    if observation.key_matches is False:
        problems.add(
            Problem.KEY_UNREADABLE
            if observation.key_unreadable
            else Problem.KEY_MISMATCH
        )
    info = observation.info
    days: int | None = None
    missing: tuple[str, ...] = ()
    if info is not None:
        days = info.days_remaining(now)
        if info.is_expired(now):
            problems.add(Problem.EXPIRED)
        elif info.remaining(now) <= warning_window(info, warning_days):
            problems.add(Problem.EXPIRING)
        if info.is_not_yet_valid(now):
            problems.add(Problem.NOT_YET_VALID)
        if source.endpoint is not None:
            if not info.covers(source.endpoint.host):
                missing = (source.endpoint.host,)
        else:
            missing = tuple(info.missing_names(source.expected_names))
            if not info.chain_valid:
                problems.add(Problem.CHAIN_INVALID)
        if missing:
            problems.add(Problem.NAME_MISMATCH)
        verification = observation.verification
        if verification not in (None, VerificationStatus.VALID):
            problem = _VERIFICATION_PROBLEMS.get(verification)
            if problem in (Problem.SELF_SIGNED, Problem.UNTRUSTED):
                problems.add(problem)
            elif problem not in problems:
                problems.add(Problem.VERIFICATION_FAILED)
    return CertificateStatus(
        source,
        observation,
        tuple(sorted(problems, key=_PRIORITY.__getitem__)),
        days,
        missing,
        pending,
    )


def next_transition(
    infos: Iterable[CertificateInfo], now: datetime, warning_days: int
) -> datetime | None:
    """The first instant after ``now`` at which a judgement of ``infos`` changes."""
    candidates: list[datetime] = []
    second = timedelta(seconds=1)
    for info in infos:
        days = info.remaining(now).days
        candidates += (
            info.not_after - timedelta(days=days) + second,  # one day less
            info.not_after - warning_window(info, warning_days),  # expiring
            info.not_after + second,  # expired
            info.not_before,  # valid
        )
    return min((when for when in candidates if when > now), default=None)


def status_attributes(status: CertificateStatus) -> dict[str, Any]:
    """The problem binary sensor's attributes: no secrets, dates in ISO 8601."""
    source, observation, info = status.source, status.observation, status.info
    attributes: dict[str, Any] = {
        "reason": status.reason.value
        if status.reason
        else REASON_NOT_ISSUED_YET
        if status.pending
        else REASON_OK,
        "days_remaining": status.days_remaining,
    }
    if source.endpoint is not None:
        attributes["verification"] = (
            observation.verification.value if observation.verification else None
        )
    else:
        attributes["path"] = source.certificate_path
    if info is not None:
        attributes |= {
            "subject": info.subject,
            "issuer": info.issuer,
            "serial_number": info.serial_number,
            "names": [*info.dns_names, *info.ip_addresses],
            "not_before": info.not_before.isoformat(),
            "not_after": info.not_after.isoformat(),
        }
    if status.missing_names:
        attributes["missing_names"] = list(status.missing_names)
    if observation.detail or observation.verification_message:
        attributes["error"] = observation.detail or observation.verification_message
    return attributes


def status_diagnostics(status: CertificateStatus) -> dict[str, Any]:
    """What diagnostics show about one certificate (no secrets)."""
    observation, info = status.observation, status.info
    return {
        "kind": status.source.kind.value,
        "name": status.source.name,
        "key_path": status.source.key_path,
        "served": status.source.served,
        "problems": [problem.value for problem in status.problems],
        "days_remaining": status.days_remaining,
        "detail": observation.detail,
        "key_matches": observation.key_matches,
        "verification": (
            observation.verification.value if observation.verification else None
        ),
        "verification_message": observation.verification_message,
        "address": observation.address,
        "tls_version": observation.tls_version,
        "certificate": info.as_dict() if info is not None else None,
    }


def endpoint_source(endpoint: EndpointOption) -> CertificateSource:
    """The source watching a remote endpoint."""
    return CertificateSource(
        key=endpoint.key,
        kind=CertificateKind.ENDPOINT,
        name=endpoint.label,
        endpoint=endpoint,
    )


def endpoint_observation(result: EndpointCertificate | CertificateError) -> Observation:
    """Turn an endpoint check's outcome into an observation."""
    if isinstance(result, EndpointError):
        problem = _ENDPOINT_PROBLEMS.get(result.reason, Problem.CONNECTION_FAILED)
        return Observation(error=problem, detail=str(result))
    if isinstance(result, CertificateError):
        # A bad CA bundle names its path; an unparseable peer certificate does not.
        problem = (
            Problem.CA_BUNDLE_UNREADABLE
            if result.path is not None
            else Problem.INVALID_FORMAT
        )
        return Observation(error=problem, detail=str(result))
    return Observation(
        info=result.certificate,
        verification=result.verification,
        verification_message=result.verification_message,
        address=result.address,
        tls_version=result.tls_version,
    )


def pair_observation(
    source: CertificateSource, result: PairInfo | CertificateError
) -> Observation:
    """Turn the read of a local certificate and its key into an observation."""
    if isinstance(result, CertificateError):
        return Observation(
            error=_FILE_PROBLEMS.get(result.reason, Problem.UNREADABLE),
            detail=str(result),
        )
    return Observation(
        info=result.certificate,
        key_matches=result.key_matches,
        key_unreadable=result.key_problem is not None,
        detail=f"{source.key_path}: {result.key_problem}"
        if result.key_problem
        else None,
    )
