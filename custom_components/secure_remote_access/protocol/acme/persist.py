"""dns-persist-01 (draft-ietf-acme-dns-persist): one TXT record, set once.

The record at ``_validation-persist.<name>`` names the CA and the ACME
account: ``<issuer-domain-name>; accounturi=<url>[; policy=wildcard]
[; persistUntil=<unix seconds>]``. Once it is in DNS, every later
authorization of that account is validated against it with no DNS change.
This module formats and reads that record, judges what a name has now, and
publishes the record where it is missing. No Home Assistant here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
import logging
from typing import Final, Protocol

from custom_components.secure_remote_access.protocol.names import (
    WILDCARD_PREFIX,
    persist_record_name,
)

from .errors import PersistLookupError, PersistRecordConflictError
from .messages import Challenge

_LOGGER = logging.getLogger(__name__)

POLICY_WILDCARD: Final = "wildcard"
_VALUE_CHARACTERS: Final = frozenset(
    chr(code) for code in range(0x21, 0x7F) if code != 0x3B
)


class PersistState(StrEnum):
    """What a name's persistent record is, seen from one account."""

    CURRENT = "current"  # the record this order needs is there
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
    NO_ISSUER_DOMAIN_NAMES = "no_issuer_domain_names"  # offered, but no issuer named
    NOT_DELEGATED = "not_delegated"  # a name has no _validation-persist delegation
    RECORD_REUSED = "record_reused"
    RECORD_SET = "record_set"
    OUTDATED_RECORD_REPLACED = "outdated_record_replaced"
    EXPIRED_RECORD_REPLACED = "expired_record_replaced"


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
        """Read a TXT value; None when it is no well-formed persist record.

        Tags are case-insensitive, whitespace around parts is ignored (RFC 8659
        issue-value syntax); a record without ``accounturi`` is not one.
        """
        issuer, *raw_params = text.split(";")
        issuer = issuer.strip(" \t")  # kept as written: CAs compare it exactly
        if not issuer or any(char in issuer for char in " \t="):
            return None
        params: dict[str, str] = {}
        for raw in raw_params:
            tag, separator, value = raw.strip(" \t").partition("=")
            tag, value = tag.strip(" \t").lower(), value.strip(" \t")
            if not separator or not tag or tag in params:
                return None
            if not set(value) <= _VALUE_CHARACTERS:
                return None
            params[tag] = value
        account_uri = params.get("accounturi")
        if not account_uri:
            return None
        until: datetime | None = None
        if (raw_until := params.get("persistuntil")) is not None:
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

    def covers(self, wanted: PersistRecord, now: datetime) -> bool:
        """Whether a CA validating ``wanted`` accepts this record."""
        return (
            self.issuer == wanted.issuer
            and self.account_uri == wanted.account_uri
            and (self.wildcard or not wanted.wildcard)
            and not self.expired(now)
        )


def record_for_order(
    offers: Sequence[Challenge | None], names: Sequence[str], account_url: str
) -> tuple[PersistRecord | None, PersistNote | None]:
    """The record all of an order's pending authorizations accept, or why none does.

    ``offers`` are their dns-persist-01 challenges (None: not offered). The
    issuer is the first one every challenge names; ``policy=wildcard`` when
    the certificate has wildcard names.
    """
    if not offers or any(offer is None for offer in offers):
        return None, PersistNote.NOT_OFFERED
    first, *others = [offer for offer in offers if offer is not None]
    issuers = [
        issuer
        for issuer in first.issuer_domain_names
        if all(issuer in other.issuer_domain_names for other in others)
    ]
    if not issuers:
        return None, PersistNote.NO_ISSUER_DOMAIN_NAMES
    record = PersistRecord(
        issuer=issuers[0],
        account_uri=first.account_uri or account_url,
        wildcard=any(name.startswith(WILDCARD_PREFIX) for name in names),
    )
    return record, None


def judge(
    texts: Sequence[str],
    wanted: PersistRecord,
    own_accounts: Collection[str],
    now: datetime,
) -> tuple[PersistState, PersistRecord | None]:
    """What the TXT values ``texts`` of a name are for an order needing ``wanted``.

    ``own_accounts`` are every account URL of ours (other CAs, earlier
    accounts): a record naming one of them may be replaced. Returns the state
    and the record it is about (None when absent).
    """
    records = [record for text in texts if (record := PersistRecord.parse(text))]
    if any(record.covers(wanted, now) for record in records):
        return PersistState.CURRENT, None
    for record in records:
        if record.account_uri == wanted.account_uri:
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
    """What the client needs to validate through dns-persist-01."""

    solver: PersistSolver
    lookup: RecordLookup
    own_accounts: frozenset[str] = frozenset()


async def publish_persist_record(
    validation: PersistValidation,
    identifiers: Sequence[str],
    wanted: PersistRecord,
    deadline: float,
    now: datetime | None = None,
) -> PersistNote:
    """Make ``wanted`` visible for every identifier; write only where it is missing.

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
        state, found = judge(texts, wanted, validation.own_accounts, now)
        _LOGGER.debug("%s: %s (%s)", record_name, state, found)
        if state is PersistState.OTHER_ACCOUNT:
            assert found is not None
            raise PersistRecordConflictError(record_name, found.account_uri)
        if state is not PersistState.CURRENT:
            to_write.append((identifier, state))
    value = wanted.to_txt()
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
