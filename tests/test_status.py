"""The monitor's pure parts: endpoint syntax, judgements, transitions, mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
from typing import Any

from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.secure_remote_access.certificate_issues import (
    CERTIFICATE_ISSUES,
    _issue_for,
)
from custom_components.secure_remote_access.const import DOMAIN
from custom_components.secure_remote_access.coordinator.certificates import (
    file_signatures,
)
from custom_components.secure_remote_access.issues import CERTIFICATE_ISSUE_KEYS
from custom_components.secure_remote_access.protocol.endpoint_list import EndpointOption
from custom_components.secure_remote_access.protocol.tls import EndpointCertificate
from custom_components.secure_remote_access.protocol.x509 import (
    CertificateFileNotFoundError,
    CertificateFormatError,
    CertificateInfo,
    EndpointConnectionRefusedError,
    EndpointError,
    EndpointTimeoutError,
    VerificationStatus,
    inspect_certificate_bytes,
)
from custom_components.secure_remote_access.status import (
    REASON_NOT_ISSUED_YET,
    REASON_OK,
    CertificateKind,
    CertificateSource,
    Observation,
    Problem,
    endpoint_observation,
    endpoint_source,
    evaluate,
    next_transition,
    status_attributes,
    status_diagnostics,
)
from tests.fakes import certs

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TRANSLATIONS = (
    Path(__file__).parent.parent
    / "custom_components"
    / "secure_remote_access"
    / "translations"
    / "en.json"
)


def _info(
    names: tuple[str, ...] = ("example.test",),
    *,
    # Issued long ago, as a certificate near its expiry really is.
    not_before: datetime = NOW - timedelta(days=70),
    not_after: datetime = NOW + timedelta(days=80),
    chain_valid: bool = True,
) -> CertificateInfo:
    leaf = certs.issue(names, not_before=not_before, not_after=not_after)
    info = inspect_certificate_bytes(leaf.fullchain_pem)
    if not chain_valid:
        info = inspect_certificate_bytes(
            leaf.cert_pem + certs.other_pki().intermediate.cert_pem
        )
    return info


def _managed(names: tuple[str, ...] = ("example.test",)) -> CertificateSource:
    return CertificateSource(
        key="managed",
        kind=CertificateKind.MANAGED,
        name="/ssl/fullchain.pem",
        certificate_path="/ssl/fullchain.pem",
        key_path="/ssl/privkey.pem",
        expected_names=names,
    )


REMOTE = endpoint_source(EndpointOption("example.test", 443))


@pytest.mark.parametrize(
    ("verification", "problems"),
    [
        (VerificationStatus.VALID, ()),
        (VerificationStatus.SELF_SIGNED, (Problem.SELF_SIGNED,)),
        (VerificationStatus.UNKNOWN_ISSUER, (Problem.UNTRUSTED,)),
        (VerificationStatus.OTHER, (Problem.VERIFICATION_FAILED,)),
        # OpenSSL's clock or an intermediate disagrees with the leaf's dates.
        (VerificationStatus.EXPIRED, (Problem.VERIFICATION_FAILED,)),
        (VerificationStatus.NAME_MISMATCH, (Problem.VERIFICATION_FAILED,)),
    ],
)
def test_evaluate_verification(
    verification: VerificationStatus, problems: tuple[Problem, ...]
) -> None:
    """OpenSSL's verdict adds a problem only where ours does not explain it."""
    observation = Observation(info=_info(), verification=verification)
    assert evaluate(REMOTE, observation, NOW, 14).problems == problems


def test_evaluate_orders_problems() -> None:
    """The reason is the most important problem; all are kept."""
    observation = Observation(
        info=_info(("other.test",), not_after=NOW + timedelta(days=3)),
        verification=VerificationStatus.UNKNOWN_ISSUER,
    )
    status = evaluate(REMOTE, observation, NOW, 14)
    assert status.problems == (
        Problem.NAME_MISMATCH,
        Problem.UNTRUSTED,
        Problem.EXPIRING,
    )
    assert status.reason is Problem.NAME_MISMATCH
    assert status.missing_names == ("example.test",)
    assert status.days_remaining == 3

    local = evaluate(
        _managed(("example.test", "*.example.test")),
        Observation(info=_info(chain_valid=False), key_matches=False),
        NOW + timedelta(days=81),
        14,
    )
    assert local.problems == (
        Problem.KEY_MISMATCH,
        Problem.EXPIRED,
        Problem.NAME_MISMATCH,
        Problem.CHAIN_INVALID,
    )
    assert local.missing_names == ("*.example.test",)
    assert local.days_remaining == -1


def test_evaluate_threshold_is_inclusive() -> None:
    """Exactly the warning threshold left counts as expiring."""
    info = _info(not_after=NOW + timedelta(days=14))
    assert evaluate(_managed(), Observation(info=info), NOW, 14).problems == (
        Problem.EXPIRING,
    )
    later = NOW - timedelta(seconds=1)
    assert evaluate(_managed(), Observation(info=info), later, 14).problems == ()
    assert evaluate(_managed(), Observation(info=info), NOW, 13).problems == ()


@pytest.mark.parametrize(
    ("lifetime", "warning_days", "expiring_from"),
    [
        (timedelta(days=90), 14, timedelta(days=14)),
        (timedelta(days=45), 14, timedelta(days=14)),
        # Let's Encrypt's shortlived profile: warned with 2 days left, not at issue.
        (timedelta(days=6), 14, timedelta(days=2)),
        (timedelta(days=6), 1, timedelta(days=1)),
    ],
)
def test_short_lived_certificates_expire_at_a_third_of_their_life(
    lifetime: timedelta, warning_days: int, expiring_from: timedelta
) -> None:
    """The warning never starts earlier than a third of the lifetime before expiry."""
    info = _info(not_before=NOW, not_after=NOW + lifetime)
    threshold = info.not_after - expiring_from
    observation = Observation(info=info)
    assert evaluate(_managed(), observation, NOW, warning_days).problems == ()
    before = threshold - timedelta(seconds=1)
    assert evaluate(_managed(), observation, before, warning_days).problems == ()
    assert evaluate(_managed(), observation, threshold, warning_days).problems == (
        Problem.EXPIRING,
    )
    # The sensors are re-judged exactly when the warning starts.
    day_before = threshold - timedelta(hours=1)
    assert next_transition([info], day_before, warning_days) == threshold


def test_next_transition() -> None:
    """The next instant a judgement changes: a day, the threshold, the expiry."""
    assert next_transition([], NOW, 14) is None
    info = _info(not_after=NOW + timedelta(days=20, hours=6))
    assert next_transition([info], NOW, 14) == NOW + timedelta(hours=6, seconds=1)
    soon = _info(not_after=NOW + timedelta(days=14, minutes=5))
    assert next_transition([info, soon], NOW, 14) == NOW + timedelta(minutes=5)
    at_expiry = NOW + timedelta(days=20, hours=6)
    assert next_transition([info], at_expiry, 14) == at_expiry + timedelta(seconds=1)
    future = _info(
        not_before=NOW + timedelta(minutes=1),
        not_after=NOW + timedelta(days=80, hours=12),
    )
    assert next_transition([future], NOW, 14) == NOW + timedelta(minutes=1)


def _endpoint_result(**extra: Any) -> EndpointCertificate:
    return EndpointCertificate(
        host="example.test",
        port=443,
        server_name=None,
        address="192.0.2.1",
        certificate=_info(),
        **extra,
    )


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (EndpointConnectionRefusedError("refused"), Problem.CONNECTION_REFUSED),
        (EndpointTimeoutError("slow"), Problem.TIMEOUT),
        (EndpointError("odd"), Problem.CONNECTION_FAILED),
        (CertificateFormatError("peer sent junk"), Problem.INVALID_FORMAT),
        (
            CertificateFileNotFoundError("gone", path="/ssl/ca.pem"),
            Problem.CA_BUNDLE_UNREADABLE,
        ),
    ],
)
def test_endpoint_observation_errors(result: Exception, error: Problem) -> None:
    """Every error an endpoint check returns maps to a reason."""
    assert isinstance(result, EndpointError | CertificateFormatError | Exception)
    observation = endpoint_observation(result)  # type: ignore[arg-type]
    assert observation.error is error
    assert observation.detail == str(result)
    assert observation.info is None


def test_attributes_and_diagnostics() -> None:
    """Attributes name the problem; diagnostics hold no key material."""
    observation = endpoint_observation(
        _endpoint_result(
            verification=VerificationStatus.UNKNOWN_ISSUER,
            verification_message="unable to get local issuer certificate",
            tls_version="TLSv1.3",
        )
    )
    status = evaluate(REMOTE, observation, NOW, 14)
    attributes = status_attributes(status)
    assert attributes["reason"] == "untrusted"
    assert attributes["verification"] == "unknown_issuer"
    assert attributes["error"] == "unable to get local issuer certificate"
    assert "path" not in attributes
    diagnostics = status_diagnostics(status)
    assert diagnostics["kind"] == "endpoint"
    assert diagnostics["address"] == "192.0.2.1"
    assert diagnostics["tls_version"] == "TLSv1.3"
    assert diagnostics["problems"] == ["untrusted"]
    json.dumps(diagnostics)

    unread = evaluate(
        _managed(),
        Observation(error=Problem.NOT_FOUND, detail="/ssl/fullchain.pem: not found"),
        NOW,
        14,
    )
    # The managed certificate: not obtained yet, not a problem.
    assert unread.problems == ()
    assert status_attributes(unread) == {
        "reason": "not_issued_yet",
        "days_remaining": None,
        "path": "/ssl/fullchain.pem",
        "error": "/ssl/fullchain.pem: not found",
    }
    assert status_diagnostics(unread)["certificate"] is None


def test_file_signatures(tmp_path: Path) -> None:
    """A missing file has no signature; a rewritten one a new one."""
    path = certs.write_file(tmp_path / "a.pem", b"one")
    first = file_signatures([str(path), str(tmp_path / "missing")])
    assert first[str(tmp_path / "missing")] is None
    certs.write_file(path, b"three")
    assert file_signatures([str(path)])[str(path)] != first[str(path)]


def test_every_reason_and_issue_is_translated() -> None:
    """Reasons, verification states, entity names and issues have English text."""
    strings = json.loads(TRANSLATIONS.read_text(encoding="utf-8"))
    entity = strings["entity"]
    for prefix in ("managed_", "served_", ""):
        for key in ("certificate_expiry", "certificate_days_remaining"):
            assert entity["sensor"][f"{prefix}{key}"]["name"]
        attributes = entity["binary_sensor"][f"{prefix}certificate_problem"][
            "state_attributes"
        ]
        assert set(attributes["reason"]["state"]) == {p.value for p in Problem} | {
            REASON_OK,
            REASON_NOT_ISSUED_YET,
        }
        for name in status_attributes(
            evaluate(REMOTE, Observation(info=_info()), NOW, 14)
        ):
            if prefix or name != "path":
                assert name in attributes or name == "verification"
    endpoint_attributes = entity["binary_sensor"]["certificate_problem"][
        "state_attributes"
    ]
    assert set(endpoint_attributes["verification"]["state"]) == {
        status.value for status in VerificationStatus
    }
    for key in CERTIFICATE_ISSUE_KEYS:
        assert strings["issues"][key]["title"]
        assert strings["issues"][key]["description"]
    assert {key for key, _ in CERTIFICATE_ISSUES.values()} == set(
        CERTIFICATE_ISSUE_KEYS
    )
    severities = dict(CERTIFICATE_ISSUES.values())
    assert severities["certificate_expiring"] is ir.IssueSeverity.WARNING
    assert severities["certificate_expired"] is ir.IssueSeverity.CRITICAL
    options = strings["options"]
    assert options["step"]["endpoints"]["data"]["endpoints"]
    for error in (
        "invalid_endpoint",
        "too_many_endpoints",
        "path_not_allowed",
        "ca_bundle_unreadable",
    ):
        assert options["error"][error]


def test_endpoint_file_problems_raise_no_issue() -> None:
    """An unparseable peer certificate is the endpoint's problem, not a file's."""
    entry = MockConfigEntry(domain=DOMAIN, title="myhome.duckdns.org")
    status = evaluate(REMOTE, Observation(error=Problem.INVALID_FORMAT), NOW, 14)
    assert status.reason is Problem.INVALID_FORMAT
    assert _issue_for(entry, status) is None
    local = evaluate(_managed(), Observation(error=Problem.INVALID_FORMAT), NOW, 14)
    spec = _issue_for(entry, local)
    assert spec is not None
    assert spec.translation_key == "certificate_unreadable"
    assert spec.placeholders["date"] == spec.placeholders["days"] == "-"
    assert spec.placeholders["detail"] == "invalid_format"
