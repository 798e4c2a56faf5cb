"""Typed ACME protocol objects (RFC 8555 section 7.1, RFC 9773) and their parsers.

Parsers raise :class:`MalformedResponseError` when a required field is missing
or has the wrong type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
import json
from typing import Any, Final

from custom_components.secure_remote_access.protocol.x509.parse import (
    parse_pem_certificates,
)

from .crypto import ari_cert_id
from .errors import AcmeProblemError, MalformedResponseError, problem_from_json

STATUS_PENDING: Final = "pending"
STATUS_PROCESSING: Final = "processing"
STATUS_READY: Final = "ready"
STATUS_VALID: Final = "valid"
STATUS_INVALID: Final = "invalid"
CHALLENGE_DNS01: Final = "dns-01"
CHALLENGE_DNS_PERSIST01: Final = "dns-persist-01"
#: The issuer list of dns-persist-01: draft-01 (Pebble 2.10, Boulder) spells it
#: ``issuer-domain-names``, draft-02 ``issuerDomainNames``.
ISSUER_DOMAIN_NAMES_KEYS: Final = ("issuer-domain-names", "issuerDomainNames")
#: draft-02: the account URI in the record is a hash under this prefix.
ACCOUNT_HASH_PREFIX_KEY: Final = "accountHashPrefix"


def _str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedResponseError(f"{what} has no valid {key!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _str_list(data: Mapping[str, Any], key: str, what: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedResponseError(f"{what} has an invalid {key!r}")
    return tuple(value)


def _lenient_str_list(value: Any) -> tuple[str, ...]:
    """The strings of a list of non-empty strings; anything else gives ()."""
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item for item in value
    ):
        return ()
    return tuple(value)


def parse_timestamp(value: Any, what: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime."""
    if not isinstance(value, str):
        raise MalformedResponseError(f"{what} is not a timestamp")
    try:
        when = datetime.fromisoformat(value)
    except ValueError as err:
        raise MalformedResponseError(f"{what} is not a timestamp: {value!r}") from err
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _opt_timestamp(data: Mapping[str, Any], key: str, what: str) -> datetime | None:
    value = data.get(key)
    return None if value is None else parse_timestamp(value, f"{what} {key}")


def _issuer_domain_names(data: Mapping[str, Any]) -> tuple[str, ...]:
    """dns-persist-01 issuer names in either spelling (draft-01 and draft-02).

    Read leniently: an unreadable list must not break a dns-01 order.
    """
    for key in ISSUER_DOMAIN_NAMES_KEYS:
        if (names := _lenient_str_list(data.get(key))) or key in data:
            return names
    return ()


def _problem(data: Mapping[str, Any], key: str) -> AcmeProblemError | None:
    value = data.get(key)
    return problem_from_json(value) if isinstance(value, Mapping) else None


@dataclass(frozen=True, slots=True)
class Directory:
    """The CA's directory: endpoint URLs and meta data."""

    new_nonce: str
    new_account: str
    new_order: str
    revoke_cert: str | None = None
    key_change: str | None = None
    renewal_info: str | None = None
    terms_of_service: str | None = None
    website: str | None = None
    caa_identities: tuple[str, ...] = ()
    external_account_required: bool = False
    profiles: Mapping[str, str] = field(default_factory=dict)
    #: dns-persist-01 (draft-02): issuer names for records made in advance.
    issuer_domain_names: tuple[str, ...] = ()
    #: dns-persist-01 (draft-02): the CA wants a hashed account URI under it.
    account_hash_prefix: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Directory:
        """Parse a directory object."""
        meta = data.get("meta") or {}
        if not isinstance(meta, Mapping):
            raise MalformedResponseError("directory meta is not an object")
        raw_profiles = meta.get("profiles") or {}
        if not isinstance(raw_profiles, Mapping):
            raise MalformedResponseError("directory meta.profiles is not an object")
        raw_caa = meta.get("caaIdentities") or []
        return cls(
            new_nonce=_str(data, "newNonce", "directory"),
            new_account=_str(data, "newAccount", "directory"),
            new_order=_str(data, "newOrder", "directory"),
            revoke_cert=_opt_str(data, "revokeCert"),
            key_change=_opt_str(data, "keyChange"),
            renewal_info=_opt_str(data, "renewalInfo"),
            terms_of_service=_opt_str(meta, "termsOfService"),
            website=_opt_str(meta, "website"),
            caa_identities=tuple(str(item) for item in raw_caa)
            if isinstance(raw_caa, list)
            else (),
            external_account_required=meta.get("externalAccountRequired") is True,
            profiles={str(name): str(text) for name, text in raw_profiles.items()},
            issuer_domain_names=_issuer_domain_names(meta),
            account_hash_prefix=_opt_str(meta, ACCOUNT_HASH_PREFIX_KEY),
        )


@dataclass(frozen=True, slots=True)
class Account:
    """An ACME account as returned by newAccount."""

    url: str
    status: str
    contact: tuple[str, ...] = ()
    orders: str | None = None

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Account:
        """Parse an account object found at ``url``."""
        return cls(
            url=url,
            status=_str(data, "status", "account"),
            contact=_str_list(data, "contact", "account"),
            orders=_opt_str(data, "orders"),
        )


@dataclass(frozen=True, slots=True)
class Identifier:
    """An order or authorization identifier."""

    type: str
    value: str

    @classmethod
    def from_json(cls, data: Any) -> Identifier:
        """Parse an identifier object."""
        if not isinstance(data, Mapping):
            raise MalformedResponseError("identifier is not an object")
        return cls(_str(data, "type", "identifier"), _str(data, "value", "identifier"))


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of an authorization."""

    type: str
    url: str
    status: str
    token: str | None = None
    error: AcmeProblemError | None = None
    #: dns-persist-01: the names the CA accepts as ``issuer-domain-name``.
    issuer_domain_names: tuple[str, ...] = ()
    #: dns-persist-01: the account URL the CA expects in ``accounturi``.
    account_uri: str | None = None
    #: dns-persist-01 (draft-02): the prefix of a hashed account URI.
    account_hash_prefix: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Challenge:
        """Parse a challenge object."""
        if not isinstance(data, Mapping):
            raise MalformedResponseError("challenge is not an object")
        return cls(
            type=_str(data, "type", "challenge"),
            url=_str(data, "url", "challenge"),
            status=_str(data, "status", "challenge"),
            token=_opt_str(data, "token"),
            error=_problem(data, "error"),
            issuer_domain_names=_issuer_domain_names(data),
            account_uri=_opt_str(data, "accounturi"),
            account_hash_prefix=_opt_str(data, ACCOUNT_HASH_PREFIX_KEY),
        )

    def persist_fingerprint(self) -> str:
        """What a refusal of dns-persist-01 was about: the issuers (their order
        means nothing), the account URI and record form the CA asked for."""
        return json.dumps(
            [
                sorted(self.issuer_domain_names),
                self.account_uri,
                self.account_hash_prefix,
            ],
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class Authorization:
    """An authorization for one identifier."""

    url: str
    identifier: Identifier
    status: str
    challenges: tuple[Challenge, ...]
    wildcard: bool = False
    expires: datetime | None = None

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Authorization:
        """Parse an authorization object found at ``url``."""
        raw = data.get("challenges", [])
        if not isinstance(raw, list):
            raise MalformedResponseError("authorization challenges is not a list")
        return cls(
            url=url,
            identifier=Identifier.from_json(data.get("identifier")),
            status=_str(data, "status", "authorization"),
            challenges=tuple(Challenge.from_json(item) for item in raw),
            wildcard=data.get("wildcard") is True,
            expires=_opt_timestamp(data, "expires", "authorization"),
        )

    @property
    def name(self) -> str:
        """The name as ordered: ``*.`` in front for wildcard authorizations."""
        return f"*.{self.identifier.value}" if self.wildcard else self.identifier.value

    def challenge(self, type_: str) -> Challenge | None:
        """The first challenge of the given type, if offered."""
        return next((item for item in self.challenges if item.type == type_), None)

    def failed_challenge_error(self) -> AcmeProblemError | None:
        """The error of the first challenge that carries one."""
        return next((item.error for item in self.challenges if item.error), None)


@dataclass(frozen=True, slots=True)
class Order:
    """An order for a certificate."""

    url: str
    status: str
    identifiers: tuple[Identifier, ...]
    authorizations: tuple[str, ...]
    finalize: str
    certificate: str | None = None
    expires: datetime | None = None
    profile: str | None = None
    replaces: str | None = None
    error: AcmeProblemError | None = None

    @classmethod
    def from_json(cls, url: str, data: Mapping[str, Any]) -> Order:
        """Parse an order object found at ``url``."""
        raw_identifiers = data.get("identifiers", [])
        if not isinstance(raw_identifiers, list):
            raise MalformedResponseError("order identifiers is not a list")
        return cls(
            url=url,
            status=_str(data, "status", "order"),
            identifiers=tuple(Identifier.from_json(item) for item in raw_identifiers),
            authorizations=_str_list(data, "authorizations", "order"),
            finalize=_str(data, "finalize", "order"),
            certificate=_opt_str(data, "certificate"),
            expires=_opt_timestamp(data, "expires", "order"),
            profile=_opt_str(data, "profile"),
            replaces=_opt_str(data, "replaces"),
            error=_problem(data, "error"),
        )


@dataclass(frozen=True, slots=True)
class RenewalInfo:
    """The CA's suggested renewal window for a certificate (RFC 9773).

    ``retry_after`` is when to ask again (aware UTC), from the ``Retry-After`` header.
    """

    start: datetime
    end: datetime
    explanation_url: str | None = None
    retry_after: datetime | None = None

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], retry_after: datetime | None
    ) -> RenewalInfo:
        """Parse a renewalInfo object."""
        window = data.get("suggestedWindow")
        if not isinstance(window, Mapping):
            raise MalformedResponseError("renewalInfo has no suggestedWindow")
        start = parse_timestamp(window.get("start"), "suggestedWindow.start")
        end = parse_timestamp(window.get("end"), "suggestedWindow.end")
        if end <= start:
            raise MalformedResponseError("renewalInfo window ends before it starts")
        return cls(
            start=start,
            end=end,
            explanation_url=_opt_str(data, "explanationURL"),
            retry_after=retry_after,
        )


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """The outcome of an issuance: certificate chain, its fresh key and facts about it."""

    fullchain_pem: str
    private_key_pem: str
    serial_hex: str
    not_before: datetime
    not_after: datetime
    names: tuple[str, ...]
    ari_cert_id: str | None
    profile: str | None
    account_url: str
    certificate_url: str
    replaced: str | None = None
    """The ARI identifier the order replaced (None: a new order, not a renewal)."""
    validation_method: str = CHALLENGE_DNS01
    """How control of the names was proven: ``dns-01``, ``dns-persist-01``, or
    ``reused_authorization`` when the CA still held valid authorizations."""
    validation_note: str | None = None
    """Why dns-01 was used, or what happened to the persistent record."""
    validation_detail: str | None = None
    """The note in words where it has more to say (the CA's refusal)."""

    def to_json(self) -> dict[str, Any]:
        """What must survive until the pair is written: the chain, the key, the order's facts."""
        return {
            "fullchain_pem": self.fullchain_pem,
            "private_key_pem": self.private_key_pem,
            "names": list(self.names),
            "profile": self.profile,
            "account_url": self.account_url,
            "certificate_url": self.certificate_url,
            "replaced": self.replaced,
            "validation_method": self.validation_method,
            "validation_note": self.validation_note,
            "validation_detail": self.validation_detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IssuedCertificate:
        """Read back `to_json`; the certificate facts come from the chain itself."""
        leaf = parse_pem_certificates(str(data["fullchain_pem"]))[0]
        return cls(
            fullchain_pem=str(data["fullchain_pem"]),
            private_key_pem=str(data["private_key_pem"]),
            serial_hex=format(leaf.serial_number, "x"),
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            names=tuple(str(name) for name in data["names"]),
            ari_cert_id=ari_cert_id(leaf),
            profile=data.get("profile"),
            account_url=str(data.get("account_url") or ""),
            certificate_url=str(data.get("certificate_url") or ""),
            replaced=data.get("replaced"),
            validation_method=str(data.get("validation_method") or CHALLENGE_DNS01),
            validation_note=data.get("validation_note"),
            validation_detail=data.get("validation_detail"),
        )
