"""Managed certificates: ACME account storage, DNS-01 through DuckDNS, renewal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from homeassistant.const import __version__ as ha_version
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from .const import (
    CONF_ACME_CA_BUNDLE,
    CONF_ACME_DIRECTORY,
    CONF_CERTIFICATE_PATH,
    CONF_DNS_SERVER,
    CONF_EAB_HMAC_KEY,
    CONF_EAB_KID,
    CONF_EMAIL,
    CONF_EXTRA_NAMES,
    CONF_KEY_TYPE,
    CONF_PRIVATE_KEY_PATH,
    CONF_PROFILE,
    CONF_WILDCARD,
    DOMAIN,
    EVENT_CERTIFICATE_RENEWED,
    LOGGER,
    directory_url_for,
)
from .protocol.acme import (
    AccountDoesNotExistError,
    AccountKey,
    AcmeClient,
    AcmeError,
    AlreadyReplacedError,
    DnsPropagationChecker,
    ExternalAccountBinding,
    IssuedCertificate,
    KeyType,
    RenewalInfo,
    ari_cert_id,
)
from .protocol.certificates import (
    CertificateError,
    CertificateInfo,
    read_certificate_file,
)
from .protocol.delegation import DelegationError, expected_records, resolve_delegations
from .protocol.duckdns import DuckDnsClient, DuckDnsError
from .protocol.files import RecoveryStatus, recover_pair, write_certificate_pair
from .protocol.schedule import RenewalDecision, RenewalReason, decide

STORAGE_VERSION: Final = 1
STORAGE_KEY: Final = f"{DOMAIN}.acme_accounts"
DATA_ACCOUNT_STORE: HassKey[AcmeAccountStore] = HassKey(f"{DOMAIN}_acme_accounts")
DEFAULT_PROPAGATION_TIMEOUT: Final = 120.0
USER_AGENT: Final = f"secure-remote-access/0.1 HomeAssistant/{ha_version}"


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

    @classmethod
    def from_options(
        cls, domains: list[str], options: Mapping[str, Any]
    ) -> CertificateSettings | None:
        """Settings from an entry's options, or None when certificates are off."""
        if not options.get(CONF_ACME_DIRECTORY):
            return None
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
        )


class AcmeAccountStore:
    """ACME account keys and URLs, one per directory URL, in private storage."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Create the store (loaded lazily)."""
        self._hass = hass
        self._store: Store[dict[str, dict[str, str]]] = Store(
            hass, STORAGE_VERSION, STORAGE_KEY, private=True, atomic_writes=True
        )
        self._accounts: dict[str, dict[str, str]] | None = None
        self._lock = asyncio.Lock()

    async def _load(self) -> dict[str, dict[str, str]]:
        if self._accounts is None:
            self._accounts = await self._store.async_load() or {}
        return self._accounts

    async def async_key(self, directory_url: str) -> tuple[AccountKey, str | None]:
        """The account key for a CA (created on first use) and its account URL."""
        async with self._lock:
            accounts = await self._load()
            stored = accounts.get(directory_url)
            if stored is not None:
                return AccountKey.from_pem(stored["key"]), stored.get("url") or None
            key = await self._hass.async_add_executor_job(AccountKey.generate)
            accounts[directory_url] = {"key": key.to_pem(), "url": ""}
            await self._store.async_save(accounts)
            return key, None

    async def async_set_url(self, directory_url: str, account_url: str) -> None:
        """Remember the account URL the CA gave us."""
        async with self._lock:
            accounts = await self._load()
            if accounts[directory_url].get("url") != account_url:
                accounts[directory_url]["url"] = account_url
                await self._store.async_save(accounts)


@callback
def account_store(hass: HomeAssistant) -> AcmeAccountStore:
    """The one account store of this Home Assistant instance."""
    if DATA_ACCOUNT_STORE not in hass.data:
        hass.data[DATA_ACCOUNT_STORE] = AcmeAccountStore(hass)
    return hass.data[DATA_ACCOUNT_STORE]


async def async_acme_client(
    hass: HomeAssistant, settings: CertificateSettings
) -> AcmeClient:
    """An ACME client on Home Assistant's shared session with the stored account key."""
    key, account_url = await account_store(hass).async_key(settings.directory_url)
    return AcmeClient(
        async_get_clientsession(hass),
        settings.directory_url,
        key,
        user_agent=USER_AGENT,
        ca_bundle=settings.ca_bundle,
        account_url=account_url,
    )


async def async_register_account(
    hass: HomeAssistant, settings: CertificateSettings
) -> AcmeClient:
    """Create (or find) the ACME account after the user accepted the terms."""
    client = await async_acme_client(hass, settings)
    account = await client.register_account(
        terms_of_service_agreed=True, contact_email=settings.email, eab=settings.eab
    )
    await account_store(hass).async_set_url(settings.directory_url, account.url)
    return client


def duckdns_domain_for(
    identifier: str,
    domains: list[str],
    delegations: Mapping[str, str] | None = None,
) -> str:
    """The DuckDNS name whose TXT record answers a challenge for ``identifier``.

    ``delegations`` maps names outside duckdns.org (without ``*.``) to the
    DuckDNS name their ``_acme-challenge`` CNAME points to.
    """
    name = identifier.lower().removeprefix("*.").rstrip(".")
    for domain in domains:
        if name == domain or name.endswith(f".{domain}"):
            return domain
    if delegations and name in delegations:
        return delegations[name]
    raise ValueError(f"{identifier} is not under {', '.join(domains)}")


class DuckDnsSolver:
    """Answers DNS-01 challenges through the one TXT value of each DuckDNS name.

    Delegated names (``delegations``, set before every order) are answered
    through the TXT value of the DuckDNS name their CNAME points to.
    """

    def __init__(self, client: DuckDnsClient, domains: list[str]) -> None:
        """Solve for names under ``domains``."""
        self._client = client
        self._domains = domains
        self.delegations: dict[str, str] = {}

    def _domain(self, identifier: str) -> str:
        return duckdns_domain_for(identifier, self._domains, self.delegations)

    async def set_txt(self, identifier: str, value: str) -> None:
        """Publish the challenge value."""
        await self._client.set_txt(self._domain(identifier), value)

    async def clear_txt(self, identifier: str) -> None:
        """Remove the challenge value."""
        await self._client.clear_txt(self._domain(identifier))


@dataclass(frozen=True, slots=True)
class RenewalOutcome:
    """What a renewal attempt did; also the action's response."""

    renewed: bool
    reason: str
    names: tuple[str, ...]
    not_after: datetime | None
    serial: str | None
    profile: str | None

    def as_response(self) -> dict[str, Any]:
        """The renew_certificate action's response."""
        return {
            "renewed": self.renewed,
            "reason": self.reason,
            "names": list(self.names),
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "serial": self.serial,
            "profile": self.profile,
        }


class CertificateRenewalError(HomeAssistantError):
    """A renewal failed; carries the CA's or DNS's reason (translated)."""

    def __init__(
        self,
        detail: str,
        retry_after: datetime | None = None,
        *,
        translation_key: str = "renewal_failed",
        placeholders: dict[str, str] | None = None,
    ) -> None:
        """Wrap the reason for the user."""
        super().__init__(
            translation_domain=DOMAIN,
            translation_key=translation_key,
            translation_placeholders={"detail": detail, **(placeholders or {})},
        )
        self.detail = detail
        self.retry_after = retry_after


class CertificateDelegationError(CertificateRenewalError):
    """A name outside duckdns.org is not delegated to DuckDNS by CNAME.

    Raised before the order: nothing is asked of the CA, nothing is written.
    """

    def __init__(self, error: DelegationError) -> None:
        """Name the exact record(s) to create."""
        self.records = expected_records(error)
        self.record = error.record
        self.target = error.target
        super().__init__(
            error.message,
            translation_key="cname_delegation_broken",
            placeholders={
                "record": error.record,
                "target": error.target,
                "records": ", ".join(self.records),
            },
        )


def read_managed_certificate(settings: CertificateSettings) -> CertificateInfo:
    """Inspect the managed certificate file (blocking)."""
    return read_certificate_file(settings.certificate_path)


class CertificateManager:
    """Obtains and renews one entry's certificate; one order at a time."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        settings: CertificateSettings,
        duckdns: DuckDnsClient,
        domains: list[str],
    ) -> None:
        """Bind the manager to its entry's DuckDNS account and settings."""
        self.hass = hass
        self.entry_id = entry_id
        self.settings = settings
        self._domains = domains
        self._solver = DuckDnsSolver(duckdns, domains)
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[RenewalOutcome], None]] = []
        self.last_outcome: RenewalOutcome | None = None
        self.renew_at: datetime | None = None
        self.propagation_timeout = DEFAULT_PROPAGATION_TIMEOUT

    @callback
    def async_add_listener(
        self, listener: Callable[[RenewalOutcome], None]
    ) -> Callable[[], None]:
        """Call ``listener`` after every renewal attempt that finished."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def async_recover(self) -> None:
        """Finish or undo a certificate install that a crash interrupted."""
        try:
            status = await self.hass.async_add_executor_job(
                recover_pair,
                self.settings.certificate_path,
                self.settings.private_key_path,
            )
        except CertificateError as err:
            LOGGER.warning("Could not check the certificate files: %s", err)
            return
        if status not in (RecoveryStatus.INTACT, RecoveryStatus.ABSENT):
            LOGGER.warning("Repaired an interrupted certificate install: %s", status)

    async def async_current(self) -> CertificateInfo | None:
        """The certificate on disk, or None when missing or unreadable."""
        try:
            return await self.hass.async_add_executor_job(
                read_managed_certificate, self.settings
            )
        except CertificateError as err:
            LOGGER.debug("Managed certificate not usable: %s", err)
            return None

    async def async_decide(
        self, current: CertificateInfo | None, force: bool = False
    ) -> RenewalDecision:
        """Whether the certificate on disk needs renewing now."""
        if force:
            return RenewalDecision(True, RenewalReason.FORCED)
        if current is None:
            exists = await self.hass.async_add_executor_job(
                self.settings.certificate_path.exists
            )
            reason = (
                RenewalReason.UNREADABLE if exists else RenewalReason.NO_CERTIFICATE
            )
            return RenewalDecision(True, reason)
        if current.missing_names(self.settings.names):
            return RenewalDecision(True, RenewalReason.NAMES_CHANGED)
        return decide(
            dt_util.utcnow(),
            current.not_before,
            current.not_after,
            renew_at=self.renew_at,
        )

    async def async_renew(self, force: bool = False) -> RenewalOutcome:
        """Renew when due (or forced); write the new pair atomically."""
        async with self._lock:
            current = await self.async_current()
            decision = await self.async_decide(current, force)
            if not decision.due:
                outcome = RenewalOutcome(
                    renewed=False,
                    reason=decision.reason,
                    names=self.settings.names,
                    not_after=current.not_after if current else None,
                    serial=current.serial_number if current else None,
                    profile=self.settings.profile,
                )
            else:
                issued = await self._issue(current)
                outcome = RenewalOutcome(
                    renewed=True,
                    reason=decision.reason,
                    names=issued.names,
                    not_after=issued.not_after,
                    serial=issued.serial_hex,
                    profile=issued.profile,
                )
                self.hass.bus.async_fire(
                    EVENT_CERTIFICATE_RENEWED,
                    {"config_entry_id": self.entry_id, **outcome.as_response()},
                )
            self.last_outcome = outcome
        for listener in list(self._listeners):
            listener(outcome)
        return outcome

    async def async_renewal_info(self) -> RenewalInfo | None:
        """The CA's ARI window for the certificate on disk (None without ARI)."""
        pem = await self.hass.async_add_executor_job(
            self.settings.certificate_path.read_text
        )
        client = await async_acme_client(self.hass, self.settings)
        return await client.renewal_info(pem)

    async def async_check_delegations(self) -> dict[str, str]:
        """Where each name outside duckdns.org delegates its challenge to.

        Raises CertificateDelegationError naming the record(s) to create.
        """
        settings = self.settings
        if not settings.extra_names:
            return {}
        try:
            return await resolve_delegations(
                settings.extra_names,
                self._domains,
                [settings.dns_server] if settings.dns_server else None,
            )
        except DelegationError as err:
            LOGGER.warning("CNAME delegation broken: %s", err.message)
            raise CertificateDelegationError(err) from err

    async def _issue(self, current: CertificateInfo | None) -> IssuedCertificate:
        settings = self.settings
        # Before the order: a broken delegation never reaches the CA.
        self._solver.delegations = await self.async_check_delegations()
        try:
            client = await async_acme_client(self.hass, settings)
            await self._ensure_account(client)
            replaces = await self._replaces(current)
            checker = DnsPropagationChecker(
                [settings.dns_server] if settings.dns_server else None
            )
            try:
                issued = await client.issue_certificate(
                    settings.names,
                    self._solver,
                    checker,
                    key_type=settings.key_type,
                    profile=settings.profile,
                    replaces=replaces,
                    propagation_timeout=self.propagation_timeout,
                )
            except AlreadyReplacedError:
                issued = await client.issue_certificate(
                    settings.names,
                    self._solver,
                    checker,
                    key_type=settings.key_type,
                    profile=settings.profile,
                    propagation_timeout=self.propagation_timeout,
                )
        except AcmeError as err:
            raise CertificateRenewalError(
                str(err), getattr(err, "retry_after", None)
            ) from err
        except DuckDnsError as err:
            raise CertificateRenewalError(str(err)) from err
        try:
            await self.hass.async_add_executor_job(
                partial(
                    write_certificate_pair,
                    settings.certificate_path,
                    settings.private_key_path,
                    issued.fullchain_pem.encode(),
                    issued.private_key_pem.encode(),
                    expected_names=settings.names,
                )
            )
        except CertificateError as err:
            raise CertificateRenewalError(str(err)) from err
        LOGGER.info(
            "Obtained a certificate for %s, valid until %s",
            ", ".join(issued.names),
            issued.not_after.isoformat(),
        )
        return issued

    async def _ensure_account(self, client: AcmeClient) -> None:
        if client.account_url is not None:
            return
        try:
            account = await client.find_account()
        except AccountDoesNotExistError:
            account = await client.register_account(
                terms_of_service_agreed=True,
                contact_email=self.settings.email,
                eab=self.settings.eab,
            )
        await account_store(self.hass).async_set_url(
            self.settings.directory_url, account.url
        )

    async def _replaces(self, current: CertificateInfo | None) -> str | None:
        if current is None or current.missing_names(self.settings.names):
            return None
        return await self.hass.async_add_executor_job(self._current_ari_id)

    def _current_ari_id(self) -> str | None:
        try:
            pem = self.settings.certificate_path.read_bytes()
            return ari_cert_id(x509.load_pem_x509_certificate(pem))
        except OSError, ValueError:
            return None
