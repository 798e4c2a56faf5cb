"""The certificate settings of an entry: its option keys, mapped in one place."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

from .const import (
    CONF_ACME_CA_BUNDLE,
    CONF_ACME_DIRECTORY,
    CONF_ACME_DIRECTORY_URL,
    CONF_CERTIFICATE_PATH,
    CONF_DNS_SERVER,
    CONF_EAB_HMAC_KEY,
    CONF_EAB_KID,
    CONF_EMAIL,
    CONF_EXTRA_NAMES,
    CONF_KEY_TYPE,
    CONF_PRIVATE_KEY_PATH,
    CONF_PROFILE,
    CONF_VALIDATION_METHOD,
    CONF_WILDCARD,
    CUSTOM_CA,
    VALIDATION_AUTOMATIC,
    VALIDATION_METHODS,
    directory_url_for,
)
from .protocol.acme import ExternalAccountBinding, KeyType
from .protocol.acme.crypto import key_type_of
from .protocol.names import normalize_san_name
from .protocol.schedule import RenewalReason
from .protocol.x509 import CertificateInfo

CERTIFICATE_KEYS: Final = (
    CONF_ACME_DIRECTORY,
    CONF_EMAIL,
    CONF_KEY_TYPE,
    CONF_WILDCARD,
    CONF_EXTRA_NAMES,
    CONF_PROFILE,
    CONF_VALIDATION_METHOD,
    CONF_CERTIFICATE_PATH,
    CONF_PRIVATE_KEY_PATH,
    CONF_ACME_CA_BUNDLE,
    CONF_EAB_KID,
    CONF_EAB_HMAC_KEY,
    CONF_DNS_SERVER,
)
"""Every entry option that belongs to the certificate settings."""


def other_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's options without its certificate settings."""
    return {k: v for k, v in options.items() if k not in CERTIFICATE_KEYS}


def certificate_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The certificate options to store from form values (without extra names).

    Text is stripped and empty fields are left out; another CA than the known
    ones is stored as its directory URL, the known ones by key. The extra
    names need the DuckDNS names to be checked: the flow parses them.
    """
    options: dict[str, Any] = {}
    for key in CERTIFICATE_KEYS:
        if key == CONF_EXTRA_NAMES:
            continue
        value = values.get(key)
        if isinstance(value, str):
            value = value.strip()
        if value not in (None, ""):
            options[key] = value
    options[CONF_WILDCARD] = bool(values.get(CONF_WILDCARD, False))
    if options.get(CONF_ACME_DIRECTORY) == CUSTOM_CA:
        options[CONF_ACME_DIRECTORY] = str(
            values.get(CONF_ACME_DIRECTORY_URL) or ""
        ).strip()
    return options


@dataclass(frozen=True, slots=True)
class CertificateSettings:
    """What to obtain, from which CA, and where to write it."""

    directory_url: str
    names: tuple[str, ...]
    certificate_path: Path
    private_key_path: Path
    key_type: KeyType = KeyType.EC_P256
    email: str | None = None
    profile: str | None = None
    ca_bundle: str | None = None
    eab: ExternalAccountBinding | None = None
    dns_server: str | None = None
    extra_names: tuple[str, ...] = ()
    validation_method: str = VALIDATION_AUTOMATIC

    @property
    def nameservers(self) -> list[str] | None:
        """The DNS server for propagation checks, or None: the zone's own servers."""
        return [self.dns_server] if self.dns_server else None

    @property
    def persist_allowed(self) -> bool:
        """Whether dns-persist-01 may be used when the CA offers it."""
        return self.validation_method == VALIDATION_AUTOMATIC

    @classmethod
    def from_options(
        cls, domains: list[str], options: Mapping[str, Any]
    ) -> CertificateSettings | None:
        """Settings from an entry's options, or None when certificates are off."""
        if not options.get(CONF_ACME_DIRECTORY):
            return None
        return cls.parse(domains, options)

    @classmethod
    def parse(
        cls, domains: list[str], options: Mapping[str, Any]
    ) -> CertificateSettings:
        """Settings from certificate options that name a CA."""
        names = list(domains)
        if options.get(CONF_WILDCARD):
            names += [f"*.{name}" for name in domains]
        extra_names = tuple(options.get(CONF_EXTRA_NAMES) or ())
        names += [name for name in extra_names if name not in names]
        eab = None
        if options.get(CONF_EAB_KID) and options.get(CONF_EAB_HMAC_KEY):
            eab = ExternalAccountBinding(
                options[CONF_EAB_KID], options[CONF_EAB_HMAC_KEY]
            )
        return cls(
            directory_url=directory_url_for(options[CONF_ACME_DIRECTORY]),
            names=tuple(names),
            certificate_path=Path(options[CONF_CERTIFICATE_PATH]),
            private_key_path=Path(options[CONF_PRIVATE_KEY_PATH]),
            key_type=KeyType(options.get(CONF_KEY_TYPE, KeyType.EC_P256)),
            email=options.get(CONF_EMAIL) or None,
            profile=options.get(CONF_PROFILE) or None,
            ca_bundle=options.get(CONF_ACME_CA_BUNDLE) or None,
            eab=eab,
            dns_server=options.get(CONF_DNS_SERVER) or None,
            extra_names=extra_names,
            validation_method=method
            if (method := options.get(CONF_VALIDATION_METHOD)) in VALIDATION_METHODS
            else VALIDATION_AUTOMATIC,
        )


class OrderedWith(NamedTuple):
    """What a certificate was ordered with that the certificate itself does not show."""

    directory_url: str
    profile: str | None

    @classmethod
    def of(cls, settings: CertificateSettings) -> OrderedWith:
        """What an order with ``settings`` is placed with."""
        return cls(settings.directory_url, settings.profile)


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What decides whether a certificate fits the settings.

    ``ordered_with`` is None when nobody recorded it (a certificate this
    entry did not order): the CA and the profile are then not compared.
    """

    names: tuple[str, ...]
    key_type: KeyType | None
    ordered_with: OrderedWith | None = None

    @classmethod
    def of(
        cls, info: CertificateInfo, ordered_with: OrderedWith | None
    ) -> CertificateFacts:
        """The facts of a certificate (its SANs and key) and how it was ordered."""
        return cls(
            info.dns_names, key_type_of(info.key_type, info.key_size), ordered_with
        )


def misfits(
    settings: CertificateSettings, facts: CertificateFacts
) -> tuple[RenewalReason, ...]:
    """Why a certificate cannot stay for ``settings`` (empty: it fits).

    Exactly the wanted names (a name too many is a misfit: a wildcard or an
    own domain turned off), the wanted key type, and, when recorded, the CA's
    directory and the profile it was ordered from. The contact e-mail, the
    validation method, the DNS server for propagation checks or the account's
    credentials never make a certificate unfit. The first misfit is the
    renewal's reason.
    """
    found: list[RenewalReason] = []
    if _name_set(facts.names) != _name_set(settings.names):
        found.append(RenewalReason.NAMES_CHANGED)
    if facts.key_type is not settings.key_type:
        found.append(RenewalReason.KEY_TYPE_CHANGED)
    if (ordered := facts.ordered_with) is not None:
        if ordered.directory_url != settings.directory_url:
            found.append(RenewalReason.CA_CHANGED)
        if ordered.profile != settings.profile:
            found.append(RenewalReason.PROFILE_CHANGED)
    return tuple(found)


def _name_set(names: Iterable[str]) -> set[str]:
    return {normalize_san_name(name) or name.lower() for name in names}
