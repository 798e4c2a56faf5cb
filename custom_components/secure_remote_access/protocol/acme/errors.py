"""Typed errors of the ACME client.

RFC 7807 problem documents (RFC 8555 section 6.7) become instances of
:class:`AcmeProblemError` or one of its subclasses, chosen by the problem type.
Everything the client raises inherits from :class:`AcmeError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .persist import PersistRefusal

ERROR_NS: Final = "urn:ietf:params:acme:error:"
#: A CA's problem detail is shown to people (Repairs issues, sensor
#: attributes, the action's error): one line of at most this many characters.
MAX_DETAIL_CHARS: Final = 1000


def one_line(text: str) -> str:
    """A CA's words as one line (no control characters) of bounded length."""
    line = " ".join(
        "".join(char if char.isprintable() else " " for char in text).split()
    )
    if len(line) > MAX_DETAIL_CHARS:
        line = line[: MAX_DETAIL_CHARS - 1].rstrip() + "…"
    return line


def parse_retry_after(
    value: str | None, now: datetime | None = None
) -> datetime | None:
    """Parse a ``Retry-After`` header (delta-seconds or HTTP-date) into an aware UTC time."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    now = now or datetime.now(UTC)
    if text.isdigit():
        return now + timedelta(seconds=int(text))
    try:
        when = parsedate_to_datetime(text)
    except TypeError, ValueError, IndexError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


class AcmeError(Exception):
    """Base class of every error raised by the ACME client."""


class AcmeConnectionError(AcmeError):
    """The ACME server could not be reached (network, TLS or HTTP transport failure)."""


class AcmeTimeoutError(AcmeConnectionError):
    """A request to the ACME server did not finish in time."""


class AcmeCertificateError(AcmeConnectionError):
    """The ACME server's TLS certificate is not trusted (a private CA: set a CA bundle)."""


class AcmeCaBundleError(AcmeConnectionError):
    """The CA bundle given for the ACME server cannot be read or holds no certificate."""


class MalformedResponseError(AcmeError):
    """The ACME server sent a reply that does not follow RFC 8555."""


class PollTimeoutError(AcmeError):
    """An order or authorization did not reach a final state in time."""


class NoDns01ChallengeError(AcmeError):
    """The CA offered no dns-01 challenge for an authorization."""

    def __init__(self, identifier: str) -> None:
        """Remember the identifier without a dns-01 challenge."""
        super().__init__(f"no dns-01 challenge offered for {identifier}")
        self.identifier = identifier


class PersistRecordConflictError(AcmeError):
    """A name's persistent validation record belongs to an account that is not ours.

    DuckDNS keeps one TXT value per name: writing ours would break the other
    client, so nothing is written.
    """

    def __init__(self, record: str, account_uri: str) -> None:
        """Remember the record and the account it names."""
        super().__init__(
            f"{record} holds the persistent validation record of another ACME "
            f"account ({account_uri}); remove the other client's record or choose "
            "dns-01 only"
        )
        self.record = record
        self.account_uri = account_uri


class PersistRefusedError(AcmeError):
    """The CA refused the dns-persist-01 record and the order is spent.

    The authorizations it failed are invalid: the client orders once more and
    answers with dns-01. ``refusal`` is the persist module's PersistRefusal.
    """

    def __init__(self, refusal: PersistRefusal) -> None:
        """Remember the refusal."""
        super().__init__(refusal.describe())
        self.refusal = refusal


class PersistLookupError(AcmeError):
    """No name server answered for a persistent record: it is not written blind."""

    def __init__(self, record: str) -> None:
        """Remember the record."""
        super().__init__(
            f"no name server answered for {record}; the record is not written "
            "without knowing what it holds (tried again later)"
        )
        self.record = record


class DnsPropagationTimeoutError(AcmeError):
    """The TXT record did not show the expected value before the deadline."""

    def __init__(self, record: str, value: str, seen: tuple[str, ...] = ()) -> None:
        """Remember the record name, the value waited for and the values last seen."""
        shown = ", ".join(seen) if seen else "nothing"
        super().__init__(
            f"TXT record {record} did not show {value!r} in time (last seen: {shown})"
        )
        self.record = record
        self.value = value
        self.seen = seen


@dataclass(frozen=True, slots=True)
class Subproblem:
    """One entry of a problem document's ``subproblems`` (RFC 8555 section 6.7.1)."""

    type: str
    detail: str
    identifier: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Subproblem:
        """Build a subproblem from its JSON object, tolerating missing fields."""
        ident = data.get("identifier")
        value = ident.get("value") if isinstance(ident, Mapping) else None
        return cls(
            type=str(data.get("type", "about:blank")),
            detail=one_line(str(data.get("detail", ""))),
            identifier=str(value) if value is not None else None,
        )


class AcmeProblemError(AcmeError):
    """An RFC 7807 problem document returned by the server (or built by the client).

    ``status`` is the HTTP status (None when the client raised it before asking),
    ``retry_after`` the aware UTC time from the ``Retry-After`` header, if any.
    """

    problem_type: str = "about:blank"

    def __init__(
        self,
        type_: str,
        detail: str = "",
        *,
        status: int | None = None,
        subproblems: tuple[Subproblem, ...] = (),
        retry_after: datetime | None = None,
        instance: str | None = None,
    ) -> None:
        """Store the problem fields."""
        super().__init__(f"{type_}: {detail}" if detail else type_)
        self.type = type_
        self.detail = detail
        self.status = status
        self.subproblems = subproblems
        self.retry_after = retry_after
        self.instance = instance

    @property
    def short_type(self) -> str:
        """The type without the ACME namespace, e.g. ``rateLimited``."""
        return self.type.removeprefix(ERROR_NS)


class BadNonceError(AcmeProblemError):
    """The nonce was rejected; the client retries these itself."""

    problem_type = ERROR_NS + "badNonce"


class RateLimitedError(AcmeProblemError):
    """The CA's rate limit was hit; see ``retry_after``."""

    problem_type = ERROR_NS + "rateLimited"


class ServiceUnavailableError(AcmeProblemError):
    """HTTP 503 from the CA (maintenance or overload); see ``retry_after``."""


class UnauthorizedError(AcmeProblemError):
    """The client lacks the authorization for the request."""

    problem_type = ERROR_NS + "unauthorized"


class AccountDoesNotExistError(AcmeProblemError):
    """No account exists for the key (``onlyReturnExisting``)."""

    problem_type = ERROR_NS + "accountDoesNotExist"


class ExternalAccountRequiredError(AcmeProblemError):
    """The CA requires External Account Binding for new accounts."""

    problem_type = ERROR_NS + "externalAccountRequired"


class UserActionRequiredError(AcmeProblemError):
    """The user must act first, usually agree to new terms of service."""

    problem_type = ERROR_NS + "userActionRequired"


class RejectedIdentifierError(AcmeProblemError):
    """The CA will not issue for one of the names (policy or block list)."""

    problem_type = ERROR_NS + "rejectedIdentifier"


class OrderNotReadyError(AcmeProblemError):
    """The order was finalized before it was ready."""

    problem_type = ERROR_NS + "orderNotReady"


class AlreadyReplacedError(AcmeProblemError):
    """The certificate named in ``replaces`` already has a replacement order."""

    problem_type = ERROR_NS + "alreadyReplaced"


class InvalidProfileError(AcmeProblemError):
    """The requested certificate profile is unknown to the CA."""

    problem_type = ERROR_NS + "invalidProfile"


class BadCsrError(AcmeProblemError):
    """The CA refused the CSR."""

    problem_type = ERROR_NS + "badCSR"


class AuthorizationInvalidError(AcmeError):
    """The CA could not validate a name; ``problem`` is the challenge's error, if any.

    ``status`` is the authorization's: ``invalid``, or ``pending`` when the CA
    kept the challenge pending with an error (smallstep) and retrying it did
    not help (``attempts`` validations).
    """

    def __init__(
        self,
        identifier: str,
        status: str,
        problem: AcmeProblemError | None,
        *,
        attempts: int = 1,
    ) -> None:
        """Remember the identifier, the authorization status and the challenge error."""
        if problem is None:
            reason = "no error detail"
        elif problem.detail:
            reason = f"{problem.detail} ({problem.short_type})"
        else:
            reason = problem.short_type
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"the CA could not validate {identifier}{tries}: {reason}")
        self.identifier = identifier
        self.status = status
        self.problem = problem
        self.attempts = attempts


class OrderInvalidError(AcmeError):
    """The order became invalid; ``problem`` is the order's error, if any."""

    def __init__(self, url: str, problem: AcmeProblemError | None) -> None:
        """Remember the order URL and its error."""
        reason = (problem.detail or problem.type) if problem else "no error detail"
        super().__init__(f"order {url} is invalid: {reason}")
        self.url = url
        self.problem = problem


def describe_acme_error(error: AcmeError) -> str:
    """The reason of an error in words for a person: the CA's detail, then its type.

    ``too many certificates ... (rateLimited)`` rather than the raw
    ``urn:ietf:params:acme:error:rateLimited: too many certificates ...``.
    """
    if isinstance(error, AcmeProblemError):
        if error.detail:
            return f"{error.detail} ({error.short_type})"
        return error.short_type
    return str(error)


_PROBLEM_CLASSES: Final[dict[str, type[AcmeProblemError]]] = {
    cls.problem_type: cls
    for cls in (
        BadNonceError,
        RateLimitedError,
        UnauthorizedError,
        AccountDoesNotExistError,
        ExternalAccountRequiredError,
        UserActionRequiredError,
        RejectedIdentifierError,
        OrderNotReadyError,
        AlreadyReplacedError,
        InvalidProfileError,
        BadCsrError,
    )
}


def problem_from_json(
    data: Mapping[str, Any],
    *,
    status: int | None = None,
    retry_after: datetime | None = None,
) -> AcmeProblemError:
    """Turn a problem document into the matching typed exception."""
    type_ = one_line(str(data.get("type") or "about:blank"))
    raw_subproblems = data.get("subproblems")
    subproblems = tuple(
        Subproblem.from_json(item)
        for item in (raw_subproblems if isinstance(raw_subproblems, list) else [])
        if isinstance(item, Mapping)
    )
    cls = _PROBLEM_CLASSES.get(type_)
    if cls is None:
        cls = ServiceUnavailableError if status == 503 else AcmeProblemError
    instance = data.get("instance")
    return cls(
        type_,
        one_line(str(data.get("detail") or "")),
        status=status,
        subproblems=subproblems,
        retry_after=retry_after,
        instance=str(instance) if instance is not None else None,
    )


# How CAs refuse a request of a deactivated account: Pebble ("Account has been
# deactivated"), Boulder ("Account is not valid, has status ..."), smallstep
# ("account is not active").
_ACCOUNT_DEACTIVATED: Final = re.compile(
    r"deactivated|not active|has status", re.IGNORECASE
)


def account_gone(error: AcmeError) -> bool:
    """Whether the CA no longer knows the account, or it was deactivated."""
    if isinstance(error, AccountDoesNotExistError):
        return True
    return isinstance(error, UnauthorizedError) and bool(
        _ACCOUNT_DEACTIVATED.search(error.detail)
    )


def refuses_replaces(error: AcmeProblemError) -> bool:
    """Whether an order refusal may be about ``replaces`` (worth one retry without).

    4xx refusals other than rate limits, bad nonces and a lost account are; so
    is HTTP 500, which Pebble (like other CAs) answers when it cannot find the
    replaced certificate's order. An overloaded or unavailable CA (502, 503,
    504) and errors the client raised itself before asking are not.
    """
    if isinstance(error, (RateLimitedError, BadNonceError)) or account_gone(error):
        return False
    return error.status is not None and (
        400 <= error.status < 500 or error.status == 500
    )
