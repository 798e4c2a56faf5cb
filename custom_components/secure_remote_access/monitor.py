"""Certificate monitoring: the managed and served files, and remote TLS endpoints.

Two coordinators per entry observe certificates: `LocalCertificateMonitor`
reads files in the executor (hourly, and within a minute of a modification
time change); `EndpointMonitor` fetches the certificates remote endpoints
present (every 6 hours, at most 10 handshakes at a time). What an observation
means at a given instant (days left, expiring, expired) is judged by
`evaluate`, so entities and Repairs stay right between reads: each monitor
wakes its listeners whenever a judgement changes (a day passes, the warning
threshold or the expiry is reached).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import os
from typing import TYPE_CHECKING, Any, ClassVar

from homeassistant.core import CALLBACK_TYPE, HassJob, HomeAssistant, callback
from homeassistant.helpers.event import (
    async_track_point_in_utc_time,
    async_track_time_interval,
)
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .const import (
    CONF_ENDPOINTS,
    CONF_EXPIRY_WARNING_DAYS,
    DEFAULT_EXPIRY_WARNING_DAYS,
    ENDPOINT_CHECK_INTERVAL,
    ENDPOINT_CONCURRENCY,
    LOCAL_CHECK_INTERVAL,
    LOGGER,
    MAX_ENDPOINTS,
    MTIME_POLL_INTERVAL,
)
from .helpers import path_is_allowed
from .protocol.endpoint_list import (
    EndpointOption,
    InvalidEndpointListError,
    parse_endpoints,
)
from .protocol.tls import (
    DEFAULT_TIMEOUT,
    Endpoint,
    EndpointCertificate,
    Resolver,
    build_verify_context,
    inspect_endpoints,
)
from .protocol.x509 import (
    CertificateError,
    CertificateInfo,
    EndpointError,
    VerificationStatus,
    read_certificate_pair,
)
from .served import same_file

if TYPE_CHECKING:
    from .certificate import CertificateManager
    from .models import RuntimeData, SecureRemoteAccessConfigEntry


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

# ------------------------------------------------------------------ endpoints


def endpoints_from_options(options: Mapping[str, Any]) -> list[EndpointOption]:
    """The endpoints an entry's options list."""
    return [
        EndpointOption.from_option(item) for item in options.get(CONF_ENDPOINTS, [])
    ]


@dataclass(frozen=True, slots=True)
class EndpointCheck:
    """The options form's endpoint list, checked."""

    endpoints: list[EndpointOption]
    error: str | None = None
    detail: str = ""


def check_endpoint_text(hass: HomeAssistant, text: str) -> EndpointCheck:
    """Parse the list and check every CA bundle. Blocking: run in the executor."""
    try:
        endpoints = parse_endpoints(text)
    except InvalidEndpointListError as err:
        lines = "; ".join(f"{number}: “{line}”" for number, line in err.lines)
        return EndpointCheck([], "invalid_endpoint", lines)
    if len(endpoints) > MAX_ENDPOINTS:
        return EndpointCheck([], "too_many_endpoints", str(len(endpoints)))
    for endpoint in endpoints:
        if endpoint.ca_bundle is None:
            continue
        if not path_is_allowed(hass, endpoint.ca_bundle):
            return EndpointCheck([], "path_not_allowed", endpoint.ca_bundle)
        try:
            build_verify_context(endpoint.ca_bundle)
        except CertificateError as err:
            LOGGER.debug("CA bundle %s not usable: %s", endpoint.ca_bundle, err)
            return EndpointCheck([], "ca_bundle_unreadable", endpoint.ca_bundle)
    return EndpointCheck(endpoints)


# ------------------------------------------------------- sources and results


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


# ------------------------------------------------------------ reading files

type FileSignature = tuple[int, int, int] | None


def file_signatures(paths: Iterable[str]) -> dict[str, FileSignature]:
    """Modification time, size and inode of each file (None if absent). Blocking."""
    signatures: dict[str, FileSignature] = {}
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError:
            signatures[path] = None
        else:
            signatures[path] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    return signatures


def read_local_certificate(source: CertificateSource) -> Observation:
    """Read a certificate file and its key. Blocking."""
    assert source.certificate_path is not None
    assert source.key_path is not None
    try:
        pair = read_certificate_pair(source.certificate_path, source.key_path)
    except CertificateError as err:
        return Observation(
            error=_FILE_PROBLEMS.get(err.reason, Problem.UNREADABLE), detail=str(err)
        )
    return Observation(
        info=pair.certificate,
        key_matches=pair.key_matches,
        key_unreadable=pair.key_problem is not None,
        detail=f"{source.key_path}: {pair.key_problem}" if pair.key_problem else None,
    )


def _local_paths(sources: Iterable[CertificateSource]) -> list[str]:
    paths: dict[str, None] = {}
    for source in sources:
        paths |= dict.fromkeys(filter(None, (source.certificate_path, source.key_path)))
    return list(paths)


def read_local_certificates(
    sources: Sequence[CertificateSource],
) -> tuple[dict[str, Observation], dict[str, FileSignature]]:
    """Stat, then read every local certificate. Blocking.

    The signatures are taken before reading: a change during the read shows
    up as a difference at the next poll.
    """
    signatures = file_signatures(_local_paths(sources))
    return {source.key: read_local_certificate(source) for source in sources}, (
        signatures
    )


async def async_local_sources(
    hass: HomeAssistant, manager: CertificateManager | None
) -> list[CertificateSource]:
    """The managed certificate and the one Home Assistant serves, once each."""
    http = getattr(hass, "http", None)
    served_cert: str | None = getattr(http, "ssl_certificate", None) or None
    served_key: str | None = getattr(http, "ssl_key", None) or None
    sources: list[CertificateSource] = []
    same = False
    if manager is not None:
        settings = manager.settings
        managed_cert = str(settings.certificate_path)
        if served_cert is not None:
            same = await hass.async_add_executor_job(
                same_file, managed_cert, served_cert
            )
        sources.append(
            CertificateSource(
                key=CertificateKind.MANAGED.value,
                kind=CertificateKind.MANAGED,
                name=managed_cert,
                certificate_path=managed_cert,
                key_path=str(settings.private_key_path),
                expected_names=settings.names,
                served=same,
            )
        )
    if served_cert is not None and not same:
        sources.append(
            CertificateSource(
                key=CertificateKind.SERVED.value,
                kind=CertificateKind.SERVED,
                name=served_cert,
                certificate_path=served_cert,
                # Without ssl_key, Home Assistant reads the key from the same file.
                key_path=served_key or served_cert,
            )
        )
    return sources


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


# -------------------------------------------------------------- coordinators


class CertificateMonitor(DataUpdateCoordinator[dict[str, Observation]]):
    """Observes some certificates; data maps each source's key to what was seen.

    A single unreadable file or unreachable endpoint is an observation, not a
    failed update: entities stay available and report the problem.
    """

    config_entry: SecureRemoteAccessConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        *,
        name: str,
        update_interval: timedelta,
        sources: Sequence[CertificateSource],
    ) -> None:
        """Watch ``sources`` with the entry's warning threshold."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=name,
            update_interval=update_interval,
            always_update=False,
        )
        self.sources: dict[str, CertificateSource] = {
            source.key: source for source in sources
        }
        self.warning_days = int(
            entry.options.get(CONF_EXPIRY_WARNING_DAYS, DEFAULT_EXPIRY_WARNING_DAYS)
        )
        self._unsub_transition: CALLBACK_TYPE | None = None

    def status(self, key: str, now: datetime | None = None) -> CertificateStatus | None:
        """The judgement of one certificate now; None before it was observed."""
        if self.data is None or (observation := self.data.get(key)) is None:
            return None
        return evaluate(
            self.sources[key], observation, now or dt_util.utcnow(), self.warning_days
        )

    def statuses(self, now: datetime | None = None) -> list[CertificateStatus]:
        """The judgement of every observed certificate now."""
        now = now or dt_util.utcnow()
        return [
            status
            for key in self.sources
            if (status := self.status(key, now)) is not None
        ]

    @callback
    def async_update_listeners(self) -> None:
        """Tell listeners, then wake them again when a judgement changes."""
        super().async_update_listeners()
        self._schedule_transition()

    @callback
    def _schedule_transition(self) -> None:
        if self._unsub_transition is not None:
            self._unsub_transition()
            self._unsub_transition = None
        if self._shutdown_requested or not self.data:
            return
        infos = [obs.info for obs in self.data.values() if obs.info is not None]
        when = next_transition(infos, dt_util.utcnow(), self.warning_days)
        if when is not None:
            self._unsub_transition = async_track_point_in_utc_time(
                self.hass,
                HassJob(self._async_transition, cancel_on_shutdown=True),
                when,
            )

    @callback
    def _async_transition(self, _now: datetime) -> None:
        self._unsub_transition = None
        self.async_update_listeners()

    async def async_shutdown(self) -> None:
        """Stop every timer."""
        await super().async_shutdown()
        if self._unsub_transition is not None:
            self._unsub_transition()
            self._unsub_transition = None


class LocalCertificateMonitor(CertificateMonitor):
    """The managed and served certificate files of an entry.

    Read hourly, and as soon as a minutely ``stat`` sees a file change.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        sources: Sequence[CertificateSource],
    ) -> None:
        """Watch the given local sources."""
        super().__init__(
            hass,
            entry,
            name=f"Certificates of {entry.title}",
            update_interval=LOCAL_CHECK_INTERVAL,
            sources=sources,
        )
        self.paths = _local_paths(sources)
        self._signatures: dict[str, FileSignature] = {}
        self._unsub_poll: CALLBACK_TYPE | None = None

    @callback
    def async_watch_files(self) -> None:
        """Start the minutely modification-time poll."""
        if self.paths and self._unsub_poll is None:
            self._unsub_poll = async_track_time_interval(
                self.hass,
                self._async_poll,
                MTIME_POLL_INTERVAL,
                name=f"{self.name} file watch",
                cancel_on_shutdown=True,
            )

    async def _async_poll(self, _now: datetime) -> None:
        signatures = await self.hass.async_add_executor_job(file_signatures, self.paths)
        if signatures != self._signatures and not self._shutdown_requested:
            LOGGER.debug("Certificate files changed: reading them again")
            await self.async_refresh()

    async def _async_update_data(self) -> dict[str, Observation]:
        if not self.sources:
            return {}
        observations, self._signatures = await self.hass.async_add_executor_job(
            read_local_certificates, list(self.sources.values())
        )
        return observations

    async def async_shutdown(self) -> None:
        """Stop the file watch too."""
        await super().async_shutdown()
        if self._unsub_poll is not None:
            self._unsub_poll()
            self._unsub_poll = None


class EndpointMonitor(CertificateMonitor):
    """The remote endpoints listed in an entry's options, every 6 hours."""

    resolver: ClassVar[Resolver | None] = None
    """Name resolution for the checks; None: the system resolver."""
    timeout: ClassVar[float] = DEFAULT_TIMEOUT
    """Seconds one endpoint check may take."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: SecureRemoteAccessConfigEntry,
        endpoints: Sequence[EndpointOption],
    ) -> None:
        """Watch the given endpoints."""
        super().__init__(
            hass,
            entry,
            name=f"TLS endpoints of {entry.title}",
            update_interval=ENDPOINT_CHECK_INTERVAL,
            sources=[endpoint_source(endpoint) for endpoint in endpoints],
        )

    async def _async_update_data(self) -> dict[str, Observation]:
        if not self.sources:
            return {}
        sources = list(self.sources.values())
        results = await inspect_endpoints(
            [
                Endpoint(
                    source.endpoint.host,
                    source.endpoint.port,
                    ca_bundle=source.endpoint.ca_bundle,
                )
                for source in sources
                if source.endpoint is not None
            ],
            concurrency=ENDPOINT_CONCURRENCY,
            timeout_seconds=type(self).timeout,
            resolver=type(self).resolver,
        )
        return {
            source.key: endpoint_observation(result)
            for source, result in zip(sources, results, strict=True)
        }


def entry_monitors(runtime: RuntimeData) -> list[CertificateMonitor]:
    """The certificate monitors of a loaded entry."""
    return [
        monitor
        for monitor in (runtime.certificates, runtime.endpoints)
        if monitor is not None
    ]
