"""dns-persist-01 (draft-ietf-acme-dns-persist): one TXT record, set once.

The record at ``_validation-persist.<name>`` names the CA and the ACME
account: ``<issuer-domain-name>; accounturi=<url>[; policy=wildcard]
[; persistUntil=<unix seconds>]`` (draft-01, which Pebble 2.10 and Boulder
validate). Once it is in DNS, every later authorization of that account is
validated against it with no DNS change. This module formats and reads that
record, judges what a name has now, publishes the record where it is missing
and describes a CA's refusal. No Home Assistant here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
import logging
import re
from typing import Any, Final, Protocol

from custom_components.secure_remote_access.protocol.names import (
    WILDCARD_PREFIX,
    persist_record_name,
)

from .errors import AcmeProblemError, PersistLookupError, PersistRecordConflictError
from .messages import Challenge, Directory

_LOGGER = logging.getLogger(__name__)

POLICY_WILDCARD: Final = "wildcard"
#: The draft lets a CA list at most ten issuer names; more is a malformed challenge.
MAX_ISSUER_DOMAIN_NAMES: Final = 10
#: How long a CA's refusal of dns-persist-01 keeps an entry on dns-01.
REFUSAL_MEMORY: Final = timedelta(days=30)
#: Problem types by which a CA says it could not read the record (Boulder: a
#: DNS SERVFAIL or time-out at DuckDNS's name servers), not that it refused
#: it: dns-01 answers that attempt, and the next one tries the record again.
LOOKUP_PROBLEMS: Final = frozenset({"dns", "connection", "serverInternal"})
_WSP: Final = " \t"
# RFC 8659 section 4.2: issuer-domain-name = label *("." label),
# label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT)); tags are labels too.
_LABEL: Final = r"[A-Za-z0-9](?:-*[A-Za-z0-9])*"
_ISSUER: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_TAG: Final = re.compile(_LABEL)
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_VALUE_CHARACTERS: Final = frozenset(
    chr(code) for code in range(0x21, 0x7F) if code != 0x3B
)
_QUOTED: Final = re.compile(r'"((?:[^"\\]|\\.)*)"')


class PersistState(StrEnum):
    """What a name's persistent record is, seen from one account."""

    CURRENT = "current"  # a record the CA accepts for this order is there
    ABSENT = "absent"  # no persist record (empty, a dns-01 value, unreadable)
    OUTDATED = (
        "outdated"  # ours (this or an earlier account of ours), not what is needed
    )
    EXPIRED = "expired"  # for this account, but its persistUntil has passed
    OTHER_ACCOUNT = (
        "other_account"  # an account that is not ours: someone else's client
    )


class PersistNote(StrEnum):
    """How validation went, for the renewal result (dns-01 fallbacks included)."""

    NOT_OFFERED = "not_offered"  # the CA offers no dns-persist-01 for every name
    NO_ISSUER_DOMAIN_NAMES = "no_issuer_domain_names"  # offered, no usable issuer
    RECORD_FORM_UNSUPPORTED = "record_form_unsupported"  # e.g. a hashed account URI
    NOT_DELEGATED = "not_delegated"  # a name has no _validation-persist delegation
    PERSIST_REFUSED = "persist_refused"  # the CA refused the record: dns-01 now
    PERSIST_REFUSED_EARLIER = "persist_refused_earlier"  # remembered: dns-01 at once
    PERSIST_LOOKUP_FAILED = "persist_lookup_failed"  # the CA could not read it
    RECORD_REUSED = "record_reused"
    RECORD_SET = "record_set"
    OUTDATED_RECORD_REPLACED = "outdated_record_replaced"
    EXPIRED_RECORD_REPLACED = "expired_record_replaced"


#: Why dns-01 was used, in words, for the notes that have no detail of their own.
UNSUPPORTED_FORM_DETAIL: Final = (
    "the CA asks for a hashed account URI (accountHashPrefix, "
    "draft-ietf-acme-dns-persist-02), a record form Secure Remote Access does "
    "not write; used dns-01"
)


@dataclass(frozen=True, slots=True)
class PersistRecord:
    """The content of one ``_validation-persist`` TXT value."""

    issuer: str
    account_uri: str
    wildcard: bool = False
    persist_until: datetime | None = None

    def to_txt(self) -> str:
        """The TXT value, in the draft's order."""
        parts = [self.issuer, f"accounturi={self.account_uri}"]
        if self.wildcard:
            parts.append(f"policy={POLICY_WILDCARD}")
        if self.persist_until is not None:
            parts.append(f"persistUntil={int(self.persist_until.timestamp())}")
        return "; ".join(parts)

    @classmethod
    def parse(cls, text: str) -> PersistRecord | None:
        """Read a TXT value as a CA does; None when a CA would reject it.

        RFC 8659's issue-value: an issuer-domain-name, then ``tag=value``
        parameters separated by ``;``, with spaces or tabs around each part;
        tags are case-insensitive and unknown ones ignored. Like Pebble and
        Boulder, an empty parameter (a trailing ``;``), a repeated tag or a
        value with spaces makes the record malformed; ``accounturi`` is required.
        """
        issuer, *raw_params = text.split(";")
        issuer = issuer.strip(_WSP)  # kept as written: Pebble compares it exactly
        if not _ISSUER.fullmatch(issuer):
            return None
        params: dict[str, str] = {}
        for raw in raw_params:
            tag, separator, value = raw.strip(_WSP).partition("=")
            tag, value = tag.strip(_WSP), value.strip(_WSP)
            if not separator or not _TAG.fullmatch(tag) or tag.lower() in params:
                return None
            if not set(value) <= _VALUE_CHARACTERS:
                return None
            params[tag.lower()] = value
        return cls._from_params(issuer, params)

    @classmethod
    def read(cls, text: str) -> PersistRecord | None:
        """Whose record a TXT value is, also when a CA would reject it.

        Accepts what people paste: a value quoted or split into strings
        zone-file style (``"ca; " "accounturi=..."``), a trailing ``;``,
        empty parameters. For deciding whose record it is, never for
        deciding whether it validates (that is `parse`).
        """
        if (record := cls.parse(text)) is not None:
            return record
        if text.strip(_WSP).startswith('"'):
            text = "".join(
                re.sub(r"\\(.)", r"\1", part) for part in _QUOTED.findall(text)
            )
        issuer, *raw_params = text.split(";")
        params: dict[str, str] = {}
        for raw in raw_params:
            tag, separator, value = raw.strip(_WSP).partition("=")
            if separator:
                params.setdefault(tag.strip(_WSP).lower(), value.strip(_WSP))
        return cls._from_params(issuer.strip(_WSP), params)

    @classmethod
    def _from_params(cls, issuer: str, params: dict[str, str]) -> PersistRecord | None:
        account_uri = params.get("accounturi")
        if not issuer or not account_uri:
            return None
        until: datetime | None = None
        if (raw_until := params.get("persistuntil")) is not None:
            if not _INTEGER.fullmatch(raw_until):
                return None
            try:
                until = datetime.fromtimestamp(int(raw_until), UTC)
            except ValueError, OverflowError, OSError:
                return None
        return cls(
            issuer=issuer,
            account_uri=account_uri,
            wildcard=params.get("policy", "").lower() == POLICY_WILDCARD,
            persist_until=until,
        )

    def expired(self, now: datetime) -> bool:
        """Whether its persistUntil has passed."""
        return self.persist_until is not None and now > self.persist_until


@dataclass(frozen=True, slots=True)
class PersistOffer:
    """What the CA accepts for an order: a record naming any of ``issuers``.

    The order of the issuers means nothing (the draft); a new record names
    the first. ``fingerprint`` tells whether the CA's challenges changed since
    it refused a record.
    """

    issuers: tuple[str, ...]
    account_uri: str
    wildcard: bool = False
    fingerprint: str = ""

    def record(self) -> PersistRecord:
        """The record to write where none is accepted."""
        return PersistRecord(self.issuers[0], self.account_uri, self.wildcard)

    def accepts(self, record: PersistRecord, now: datetime) -> bool:
        """Whether the CA validates this order against ``record``."""
        return (
            record.issuer in self.issuers
            and record.account_uri == self.account_uri
            and (record.wildcard or not self.wildcard)
            and not record.expired(now)
        )


def offer_for_order(
    offers: Sequence[Challenge | None],
    names: Sequence[str],
    account_url: str,
    directory: Directory,
) -> tuple[PersistOffer | None, PersistNote | None]:
    """What all of an order's pending authorizations accept, or why nothing is.

    ``offers`` are their dns-persist-01 challenges (None: not offered). The
    issuers are those every challenge names (in either spelling, else the
    directory's list); ``policy=wildcard`` when the certificate has wildcard
    names. A CA asking for a hashed account URI (draft-02) gets dns-01: a
    record it cannot accept is never written.
    """
    if not offers or any(offer is None for offer in offers):
        return None, PersistNote.NOT_OFFERED
    challenges = [offer for offer in offers if offer is not None]
    if directory.account_hash_prefix or any(
        challenge.account_hash_prefix for challenge in challenges
    ):
        return None, PersistNote.RECORD_FORM_UNSUPPORTED
    lists = [
        challenge.issuer_domain_names or directory.issuer_domain_names
        for challenge in challenges
    ]
    if any(len(issuers) > MAX_ISSUER_DOMAIN_NAMES for issuers in lists):
        return None, PersistNote.NO_ISSUER_DOMAIN_NAMES
    first, *others = lists
    issuers = tuple(
        issuer for issuer in first if all(issuer in other for other in others)
    )
    if not issuers:
        return None, PersistNote.NO_ISSUER_DOMAIN_NAMES
    offer = PersistOffer(
        issuers=issuers,
        account_uri=next(
            (item.account_uri for item in challenges if item.account_uri), account_url
        ),
        wildcard=any(name.startswith(WILDCARD_PREFIX) for name in names),
        fingerprint="|".join(
            sorted({challenge.persist_fingerprint() for challenge in challenges})
        ),
    )
    return offer, None


@dataclass(frozen=True, slots=True)
class PersistRefusal:
    """A CA refused this account's dns-persist-01 record for challenges like these."""

    account_url: str
    offer: str
    problem_type: str
    detail: str
    refused_at: datetime

    @classmethod
    def from_error(
        cls, account_url: str, offer: str, error: Exception, now: datetime
    ) -> PersistRefusal:
        """The refusal ``error`` (the failed validation) tells of."""
        problem: AcmeProblemError | None = getattr(error, "problem", None)
        if problem is None:
            return cls(account_url, offer, "", str(error), now)
        return cls(account_url, offer, problem.short_type, problem.detail, now)

    @property
    def lasting(self) -> bool:
        """Whether the CA judged the record (remembered), rather than failing
        to look it up (tried again next time)."""
        return self.problem_type not in LOOKUP_PROBLEMS

    @property
    def note(self) -> PersistNote:
        """The renewal result's note for this refusal."""
        if self.lasting:
            return PersistNote.PERSIST_REFUSED
        return PersistNote.PERSIST_LOOKUP_FAILED

    @property
    def retry_from(self) -> datetime:
        """When dns-persist-01 is tried again (unless the CA's challenges change)."""
        return self.refused_at + REFUSAL_MEMORY

    def applies(self, account_url: str, offer: str, now: datetime) -> bool:
        """Whether an order of ``account_url`` offered ``offer`` skips dns-persist-01."""
        return (
            self.lasting
            and self.account_url == account_url
            and self.offer == offer
            and now < self.retry_from
        )

    @property
    def reason(self) -> str:
        """The CA's words and problem type."""
        reason = self.detail or "no detail"
        return f"{reason} ({self.problem_type})" if self.problem_type else reason

    def describe(self, *, earlier: bool = False) -> str:
        """The refusal in words, for the renewal result."""
        reason = self.reason
        if not self.lasting:
            return (
                f"the CA could not look up the dns-persist-01 record: {reason}; "
                "used dns-01 (dns-persist-01 is tried again next time)"
            )
        if not earlier:
            return f"dns-persist-01 refused by the CA: {reason}; used dns-01"
        return (
            f"dns-persist-01 refused by the CA on {self.refused_at:%Y-%m-%d}: "
            f"{reason}; used dns-01 (dns-persist-01 is tried again from "
            f"{self.retry_from:%Y-%m-%d} or when the CA's challenge changes)"
        )

    def to_json(self) -> dict[str, str]:
        """What a store keeps."""
        return {
            "account_url": self.account_url,
            "offer": self.offer,
            "problem_type": self.problem_type,
            "detail": self.detail,
            "refused_at": self.refused_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Any) -> PersistRefusal | None:
        """Read `to_json` back; None when it is unreadable."""
        try:
            refused_at = datetime.fromisoformat(str(data["refused_at"]))
            return cls(
                account_url=str(data["account_url"]),
                offer=str(data["offer"]),
                problem_type=str(data.get("problem_type") or ""),
                detail=str(data.get("detail") or ""),
                refused_at=refused_at
                if refused_at.tzinfo
                else refused_at.replace(tzinfo=UTC),
            )
        except KeyError, TypeError, ValueError:
            return None


def judge(
    texts: Sequence[str],
    offer: PersistOffer,
    own_accounts: Collection[str],
    now: datetime,
) -> tuple[PersistState, PersistRecord | None]:
    """What the TXT values ``texts`` of a name are for an order ``offer`` is for.

    Current when a value the CA would read as a record names any issuer it
    lists, the account and (for wildcards) the policy. Otherwise whose record
    it is decides, read leniently: ``own_accounts`` are every account URL of
    ours (other CAs, earlier accounts), a record naming one may be replaced.
    Returns the state and the record it is about (None when absent).
    """
    strict = [record for text in texts if (record := PersistRecord.parse(text))]
    if any(offer.accepts(record, now) for record in strict):
        return PersistState.CURRENT, None
    records = [record for text in texts if (record := PersistRecord.read(text))]
    for record in records:
        if record.account_uri == offer.account_uri:
            if record.expired(now):
                return PersistState.EXPIRED, record
            return PersistState.OUTDATED, record
    for record in records:
        if record.account_uri not in own_accounts:
            return PersistState.OTHER_ACCOUNT, record
    if records:
        return PersistState.OUTDATED, records[0]
    return PersistState.ABSENT, None


class PersistSolver(Protocol):
    """Publishes the persistent record (for DuckDNS: the one TXT value of a domain)."""

    def zone_of(self, identifier: str) -> str:
        """The name whose one TXT value answers for ``identifier``'s record."""

    async def set_persist_txt(self, identifier: str, value: str) -> None:
        """Publish ``value`` as ``identifier``'s persistent record."""


class RecordLookup(Protocol):
    """Reads TXT records where the CA will read them."""

    async def query_txt(self, name: str) -> tuple[str, ...] | None:
        """Every TXT string of ``name`` (CNAMEs followed); None when no server answered."""

    async def wait_for_record(self, record: str, value: str, deadline: float) -> None:
        """Return once ``record`` shows ``value``; raise at ``deadline`` (loop time)."""


@dataclass(frozen=True, slots=True)
class PersistValidation:
    """What the client needs to validate through dns-persist-01.

    ``refusal`` is the CA's last refusal remembered for this CA directory;
    ``on_refused`` hears of a new one before anything else is tried (so that
    a restart in the middle of the dns-01 fallback does not try again).
    """

    solver: PersistSolver
    lookup: RecordLookup
    own_accounts: frozenset[str] = frozenset()
    refusal: PersistRefusal | None = None
    on_refused: Callable[[PersistRefusal], Awaitable[None]] | None = None


async def publish_persist_record(
    validation: PersistValidation,
    identifiers: Sequence[str],
    offer: PersistOffer,
    deadline: float,
    now: datetime | None = None,
) -> PersistNote:
    """Make a record ``offer`` accepts visible for every identifier; write only
    where none is.

    One look per zone (a DuckDNS domain answers for every name under it);
    a zone already showing the record costs no write and no wait. Raises
    PersistRecordConflictError, writing nothing, when a zone holds another
    account's record.
    """
    now = now or datetime.now(UTC)
    zones: dict[str, str] = {}
    for identifier in identifiers:
        zones.setdefault(validation.solver.zone_of(identifier), identifier)
    to_write: list[tuple[str, PersistState]] = []
    for identifier in zones.values():
        record_name = persist_record_name(identifier)
        texts = await validation.lookup.query_txt(record_name)
        if texts is None:  # unknown is not absent: never write blind
            raise PersistLookupError(record_name)
        state, found = judge(texts, offer, validation.own_accounts, now)
        _LOGGER.debug("%s: %s (%s)", record_name, state, found)
        if state is PersistState.OTHER_ACCOUNT:
            assert found is not None
            raise PersistRecordConflictError(record_name, found.account_uri)
        if state is not PersistState.CURRENT:
            to_write.append((identifier, state))
    value = offer.record().to_txt()
    for identifier, state in to_write:
        if state is PersistState.EXPIRED:
            _LOGGER.warning(
                "The persistent validation record %s had expired; writing it again",
                persist_record_name(identifier),
            )
        await validation.solver.set_persist_txt(identifier, value)
    for identifier, _state in to_write:
        await validation.lookup.wait_for_record(
            persist_record_name(identifier), value, deadline
        )
    states = {state for _identifier, state in to_write}
    if not to_write:
        return PersistNote.RECORD_REUSED
    if PersistState.EXPIRED in states:
        return PersistNote.EXPIRED_RECORD_REPLACED
    if PersistState.OUTDATED in states:
        return PersistNote.OUTDATED_RECORD_REPLACED
    return PersistNote.RECORD_SET
