"""Managed certificates: ACME account store, DNS-01 through DuckDNS, order and verified write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util

from .account import (
    AccountTermsChangedError,
    account_store,
    async_acme_client,
    async_ensure_account,
    async_heal_account,
)
from .certificate_settings import (
    CertificateFacts,
    CertificateSettings,
    OrderedWith,
    misfits,
)
from .const import DOMAIN, LOGGER
from .helpers import allowed_roots
from .persist_record import PersistRecords, PersistRefusals
from .protocol.acme import (
    AcmeClient,
    AcmeError,
    DnsPropagationChecker,
    IssuedCertificate,
    PersistRecordConflictError,
    PersistValidation,
    RenewalInfo,
    account_gone,
    ari_cert_id,
    describe_acme_error,
)
from .protocol.acme.dns import DEFAULT_PROPAGATION_TIMEOUT
from .protocol.acme.messages import CHALLENGE_DNS01
from .protocol.confined import PathNotAllowedError
from .protocol.delegation import DelegationError, expected_records, resolve_delegations
from .protocol.dnsutil import is_nameserver
from .protocol.duckdns import DuckDnsClient, DuckDnsError
from .protocol.names import CHALLENGE_PREFIX, PERSIST_PREFIX
from .protocol.pairfiles import (
    RecoveryStatus,
    check_pair_writable,
    recover_pair,
    write_certificate_pair,
)
from .protocol.schedule import RenewalDecision, RenewalReason, decide
from .protocol.x509 import (
    DEFAULT_CLOCK_SKEW,
    CertificateError,
    CertificateInfo,
    read_certificate_pair,
    read_certificates,
)
from .solver import DuckDnsSolver

#: The renewal error (and Repairs issue) of a path outside the allowed folders.
CERTIFICATE_PATH_NOT_ALLOWED: Final = "certificate_path_not_allowed"


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


class CertificateTermsError(CertificateRenewalError):
    """The CA lost the account and its terms changed (or which terms were accepted
    is unknown): the user must accept them."""

    def __init__(self, directory_url: str, err: AccountTermsChangedError) -> None:
        """Name the new terms and what the CA said."""
        self.terms = err.terms
        self.directory_url = directory_url
        self.account_url = err.account_url
        #: False for an account whose accepted terms were never recorded.
        self.accepted_known = err.accepted is not None
        super().__init__(
            err.detail,
            translation_key=(
                "account_terms_changed"
                if err.accepted is not None
                else "account_terms_unconfirmed"
            ),
            placeholders={"terms": err.terms, "directory": directory_url},
        )


@dataclass(frozen=True, slots=True)
class CurrentCertificate:
    """The managed pair as it is on disk now (no secrets)."""

    info: CertificateInfo
    key_matches: bool
    ari_id: str | None
    leaf_pem: str

    @property
    def serial(self) -> str:
        """The leaf's serial number (lower-case hex)."""
        return self.info.serial_number


def read_current_certificate(settings: CertificateSettings) -> CurrentCertificate:
    """Read the managed pair (blocking); CertificateError when the certificate is unusable."""
    pair = read_certificate_pair(settings.certificate_path, settings.private_key_path)
    leaf = read_certificates(settings.certificate_path)[0]
    return CurrentCertificate(
        info=pair.certificate,
        key_matches=pair.key_matches,
        ari_id=ari_cert_id(leaf),
        leaf_pem=leaf.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


async def async_read_current(
    hass: HomeAssistant, settings: CertificateSettings
) -> CurrentCertificate | None:
    """The pair on disk, or None when the certificate is missing or unreadable."""
    try:
        return await hass.async_add_executor_job(read_current_certificate, settings)
    except (CertificateError, ValueError) as err:
        LOGGER.debug("Managed certificate not usable: %s", err)
        return None


class CertificateManager:
    """Orders and writes one entry's certificate; it holds no renewal state.

    When and whether to renew is the renewal coordinator's decision
    (renewal.py); this class only reads the pair, asks the CA and writes.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        settings: CertificateSettings,
        duckdns: DuckDnsClient,
        domains: list[str],
        persist_records: PersistRecords | None = None,
    ) -> None:
        """Bind the manager to its entry's DuckDNS account and settings."""
        self.hass = hass
        self.entry_id = entry_id
        self.settings = settings
        self._domains = domains
        self.persist_records = persist_records or PersistRecords(hass, entry_id)
        self.persist_refusals = PersistRefusals(hass, entry_id)
        self._solver = DuckDnsSolver(
            duckdns, domains, self.persist_records.async_written
        )
        self.propagation_timeout = DEFAULT_PROPAGATION_TIMEOUT
        # The latest delegation check: True passed, False broken, None not run yet.
        self.delegations_verified: bool | None = None
        #: The last order got a new ACME account (the old one was gone) that
        #: the CA accepted: the conditions of earlier failures changed.
        self.account_replaced = False

    async def async_recover(self) -> None:
        """Finish or undo a certificate install that a crash interrupted."""
        try:
            status = await self.hass.async_add_executor_job(
                _in_allowed_roots,
                self.hass,
                recover_pair,
                self.settings.certificate_path,
                self.settings.private_key_path,
            )
        except CertificateError as err:
            LOGGER.warning("Could not check the certificate files: %s", err)
            return
        if status not in (RecoveryStatus.INTACT, RecoveryStatus.ABSENT):
            LOGGER.warning("Repaired an interrupted certificate install: %s", status)

    async def async_current(self) -> CurrentCertificate | None:
        """The pair on disk, or None when the certificate is missing or unreadable."""
        return await async_read_current(self.hass, self.settings)

    async def async_decide(
        self,
        current: CurrentCertificate | None,
        *,
        ordered_with: OrderedWith | None = None,
        renew_at: datetime | None = None,
        now: datetime | None = None,
    ) -> RenewalDecision:
        """Whether the pair on disk needs renewing at ``now``.

        A pair that does not fit the settings (`misfits`; ``ordered_with``
        is what this very certificate was ordered with, when known) is due
        at once. ``renew_at`` is the moment picked in the CA's ARI window
        for this very certificate (the caller checks the serial).
        """
        if current is None:
            exists = await self.hass.async_add_executor_job(
                self.settings.certificate_path.exists
            )
            reason = (
                RenewalReason.UNREADABLE if exists else RenewalReason.NO_CERTIFICATE
            )
            return RenewalDecision(True, reason)
        if found := misfits(
            self.settings, CertificateFacts.of(current.info, ordered_with)
        ):
            return RenewalDecision(True, found[0])
        if not current.key_matches:
            return RenewalDecision(True, RenewalReason.KEY_MISMATCH)
        return decide(
            now or dt_util.utcnow(),
            current.info.not_before,
            current.info.not_after,
            renew_at=renew_at,
        )

    async def async_renewal_info(
        self, current: CurrentCertificate
    ) -> RenewalInfo | None:
        """The CA's ARI window for the certificate on disk (None without ARI)."""
        client = await async_acme_client(self.hass, self.settings)
        return await client.renewal_info(current.leaf_pem)

    async def async_check_delegations(self) -> dict[str, str]:
        """Where each name outside duckdns.org delegates its challenge to.

        With dns-persist-01 allowed, either record may delegate: the
        ``_validation-persist`` delegations go to the solver, and a name
        without a working ``_acme-challenge`` one is refused only if the
        order falls back to dns-01. Raises CertificateDelegationError naming
        the ``_acme-challenge`` record(s) to create when neither works.
        """
        settings = self.settings
        self._solver.persist_delegations = {}
        self._solver.dns01_problem = None
        if not settings.extra_names:
            return {}
        persist_ok = False
        if settings.persist_allowed:
            try:
                self._solver.persist_delegations = await self._delegations(
                    PERSIST_PREFIX
                )
                persist_ok = True
            except DelegationError as err:
                LOGGER.debug("No dns-persist-01 delegation: %s", err.message)
        try:
            delegations = await self._delegations(CHALLENGE_PREFIX)
        except DelegationError as err:
            if not persist_ok:
                self.delegations_verified = False
                LOGGER.warning("CNAME delegation broken: %s", err.message)
                raise CertificateDelegationError(err) from err
            self._solver.dns01_problem = err
            delegations = {}
        self.delegations_verified = True
        return delegations

    async def _delegations(self, prefix: str) -> dict[str, str]:
        settings = self.settings
        return await resolve_delegations(
            settings.extra_names,
            self._domains,
            settings.nameservers,
            prefix=prefix,
        )

    async def async_order(
        self, current: CurrentCertificate | None, *, replaces: bool = True
    ) -> IssuedCertificate:
        """Order a certificate and answer the challenges; nothing is written.

        ``replaces``: name the current certificate in the order (ARI). Before
        anything is asked of the CA, the pair's paths must be writable: a
        certificate that could not be written would be ordered again and
        again. Every expected failure is a CertificateRenewalError.
        """
        settings = self.settings
        if settings.dns_server and not is_nameserver(settings.dns_server):
            raise CertificateRenewalError(
                f"the DNS server for propagation checks ({settings.dns_server}) "
                "is not an IP address or IP:port"
            )
        try:
            await self.hass.async_add_executor_job(
                _in_allowed_roots,
                self.hass,
                check_pair_writable,
                settings.certificate_path,
                settings.private_key_path,
            )
        except CertificateError as err:
            raise _write_refused(err) from err
        # Before the order: a broken delegation never reaches the CA.
        self._solver.delegations = await self.async_check_delegations()
        self.account_replaced = False
        try:
            client = await async_acme_client(self.hass, settings)
            checker = DnsPropagationChecker(settings.nameservers)
            persist = (
                PersistValidation(
                    self._solver,
                    checker,
                    await account_store(self.hass).async_account_urls(),
                    await self.persist_refusals.async_get(settings.directory_url),
                    partial(
                        self.persist_refusals.async_remember, settings.directory_url
                    ),
                )
                if settings.persist_allowed
                else None
            )
            issue = partial(
                AcmeClient.issue_certificate,
                names=settings.names,
                solver=self._solver,
                checker=checker,
                key_type=settings.key_type,
                profile=settings.profile,
                replaces=self._replaces(current) if replaces else None,
                propagation_timeout=self.propagation_timeout,
                persist=persist,
            )
            try:
                await async_ensure_account(self.hass, settings, client)
                issued = await issue(client)
            except AcmeError as err:
                if not account_gone(err):
                    raise
                client = await async_heal_account(self.hass, settings, client, err)
                try:
                    issued = await issue(client)  # one registration per order at most
                except AcmeError as again:
                    # The CA refusing the new account too changed nothing: the
                    # back-off goes on (no new account every minute).
                    self.account_replaced = not account_gone(again)
                    raise
                self.account_replaced = True
        except AccountTermsChangedError as err:
            raise CertificateTermsError(settings.directory_url, err) from err
        except DelegationError as err:  # dns-01 fallback for a name without one
            raise CertificateDelegationError(err) from err
        except PersistRecordConflictError as err:
            raise CertificateRenewalError(
                str(err),
                translation_key="persist_record_conflict",
                placeholders={"record": err.record, "account": err.account_uri},
            ) from err
        except AcmeError as err:
            raise CertificateRenewalError(
                describe_acme_error(err), getattr(err, "retry_after", None)
            ) from err
        except DuckDnsError as err:
            raise CertificateRenewalError(str(err)) from err
        except OSError as err:  # a CA bundle or DNS server that cannot be used
            raise CertificateRenewalError(_os_error_detail(err)) from err
        if issued.validation_method == CHALLENGE_DNS01:
            # dns-01 overwrote (and cleared) the one TXT value of these names.
            await self.persist_records.async_forget(
                {self._solver.dns01_zone_of(name) for name in issued.names}
            )
        return issued

    async def async_write(self, issued: IssuedCertificate) -> None:
        """Verify the issued pair and install it atomically.

        Verified at the CA's own notBefore when this clock is behind: a fresh
        certificate is never thrown away because of the local clock.
        """
        settings = self.settings
        now = dt_util.utcnow()
        if issued.not_before > now:
            if issued.not_before - now > DEFAULT_CLOCK_SKEW:
                LOGGER.warning(
                    "This system's clock is %d minutes behind the certificate "
                    "authority's: check its time synchronisation",
                    round((issued.not_before - now).total_seconds() / 60),
                )
            now = issued.not_before
        try:
            await self.hass.async_add_executor_job(
                partial(
                    _in_allowed_roots,
                    self.hass,
                    write_certificate_pair,
                    settings.certificate_path,
                    settings.private_key_path,
                    issued.fullchain_pem.encode(),
                    issued.private_key_pem.encode(),
                    expected_names=settings.names,
                    now=now,
                )
            )
        except CertificateError as err:
            raise _write_refused(err) from err
        LOGGER.info(
            "Obtained a certificate for %s, valid until %s",
            ", ".join(issued.names),
            issued.not_after.isoformat(),
        )

    def _replaces(self, current: CurrentCertificate | None) -> str | None:
        if current is None or current.info.missing_names(self.settings.names):
            return None
        return current.ari_id


def _in_allowed_roots[T](
    hass: HomeAssistant, write: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """Run a pair function confined to this installation's folders (blocking)."""
    return write(*args, allowed=allowed_roots(hass), **kwargs)


def _write_refused(err: CertificateError) -> CertificateRenewalError:
    """A pair that cannot be written; a path outside the allowed folders says so."""
    if isinstance(err, PathNotAllowedError):
        return CertificateRenewalError(
            str(err),
            translation_key=CERTIFICATE_PATH_NOT_ALLOWED,
            placeholders={"path": err.path or "", "allowed": ", ".join(err.allowed)},
        )
    return CertificateRenewalError(str(err))


def _os_error_detail(err: OSError) -> str:
    """An OSError as a sentence without Python's formatting."""
    reason = err.strerror or str(err) or type(err).__name__
    return f"{err.filename}: {reason}" if err.filename else reason
