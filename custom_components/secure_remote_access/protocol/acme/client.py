"""RFC 8555 ACME client for asyncio, with dns-01 issuance and ARI (RFC 9773).

Typical use::

    client = AcmeClient(session, directory_url, account_key, user_agent=UA)
    await client.register_account(terms_of_service_agreed=True, contact_email=mail)
    issued = await client.issue_certificate(
        ["example.duckdns.org", "*.example.duckdns.org"], solver, checker
    )
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
import logging
import os
import ssl
from typing import Any, Final

import aiohttp
from cryptography import x509

from custom_components.secure_remote_access.protocol.names import normalize_names
from custom_components.secure_remote_access.protocol.x509.errors import (
    CertificateFormatError,
)
from custom_components.secure_remote_access.protocol.x509.parse import (
    parse_pem_certificates,
)

from .crypto import ari_cert_id, top_issuer_common_name
from .errors import (
    AuthorizationInvalidError,
    ExternalAccountRequiredError,
    InvalidProfileError,
    MalformedResponseError,
    OrderInvalidError,
    PollTimeoutError,
)
from .issue import issue_certificate
from .jws import AccountKey, ExternalAccountBinding, b64url
from .messages import (
    STATUS_INVALID,
    STATUS_PENDING,
    STATUS_PROCESSING,
    STATUS_VALID,
    Account,
    Authorization,
    Challenge,
    Directory,
    Order,
    RenewalInfo,
)
from .transport import DEFAULT_REQUEST_TIMEOUT, AcmeResponse, AcmeTransport

_LOGGER = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL: Final = 2.0
FIRST_POLL_DELAY: Final = 0.5
DEFAULT_POLL_TIMEOUT: Final = 180.0
DEFAULT_MAX_RETRY_AFTER: Final = 60.0
# A challenge kept pending with an error is POSTed again this many times,
# after 1, 2, 4, 8, 16, 16, 16, 16 s (doubling up to 16 times the first delay)
# unless the CA says Retry-After: 79 s in all, longer than DuckDNS's TTL of
# 60 s, for which a caching resolver of the CA (a Pi-hole) may still give the
# value the name had before (the wildcard's, when the base name comes next).
DEFAULT_CHALLENGE_RETRIES: Final = 8
DEFAULT_CHALLENGE_RETRY_DELAY: Final = 1.0
_CHALLENGE_RETRY_GROWTH: Final = 16.0
# A CA offers one or two alternate chains; never follow an endless list.
MAX_ALTERNATE_CHAINS: Final = 3
PEM_CHAIN_TYPE: Final = "application/pem-certificate-chain"


class AcmeClient:
    """An ACME account on one CA: account management, orders, dns-01 issuance, ARI.

    ``session`` is never closed by the client. ``ssl_context`` or ``ca_bundle``
    (a PEM file) let it trust a private CA. ``account_url`` skips the account
    lookup when already known; otherwise the first request that needs it looks it
    up with ``onlyReturnExisting``.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        directory_url: str,
        account_key: AccountKey,
        *,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
        account_url: str | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        poll_timeout: float = DEFAULT_POLL_TIMEOUT,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        challenge_retries: int | None = None,
        challenge_retry_delay: float | None = None,
    ) -> None:
        """Set up the client; nothing is sent until the first call."""
        self._transport = AcmeTransport(
            session,
            directory_url,
            user_agent=user_agent,
            ssl_context=ssl_context,
            ca_bundle=ca_bundle,
            request_timeout=request_timeout,
        )
        self._key = account_key
        self._account_url = account_url
        self._poll_interval = poll_interval
        self._poll_timeout = poll_timeout
        self._max_retry_after = max_retry_after
        self._challenge_retries = (
            DEFAULT_CHALLENGE_RETRIES
            if challenge_retries is None
            else challenge_retries
        )
        self._challenge_retry_delay = (
            DEFAULT_CHALLENGE_RETRY_DELAY
            if challenge_retry_delay is None
            else challenge_retry_delay
        )

    @property
    def account_key(self) -> AccountKey:
        """The account key."""
        return self._key

    @property
    def account_url(self) -> str | None:
        """The account URL (the JWS ``kid``) once known."""
        return self._account_url

    async def directory(self) -> Directory:
        """The CA's directory (fetched once): URLs, terms of service, profiles, EAB need."""
        return await self._transport.directory()

    # --- account -----------------------------------------------------------

    async def register_account(
        self,
        *,
        terms_of_service_agreed: bool,
        contact_email: str | None = None,
        eab: ExternalAccountBinding | None = None,
    ) -> Account:
        """Create the account for the key, or return the existing one."""
        directory = await self.directory()
        if eab is None and directory.external_account_required:
            raise ExternalAccountRequiredError(
                ExternalAccountRequiredError.problem_type,
                "the CA requires External Account Binding credentials",
            )
        payload: dict[str, Any] = {"termsOfServiceAgreed": terms_of_service_agreed}
        if contact_email:
            payload["contact"] = [f"mailto:{contact_email}"]
        if eab is not None:
            payload["externalAccountBinding"] = eab.sign(
                self._key.jwk, directory.new_account
            )
        response = await self._transport.post(
            directory.new_account, payload, key=self._key, kid=None
        )
        return self._account_from(response)

    async def find_account(self) -> Account:
        """Look the account up by key; raises AccountDoesNotExistError without one."""
        directory = await self.directory()
        response = await self._transport.post(
            directory.new_account, {"onlyReturnExisting": True}, key=self._key, kid=None
        )
        return self._account_from(response)

    def _account_from(self, response: AcmeResponse) -> Account:
        url = response.location
        if url is None:
            raise MalformedResponseError("newAccount returned no Location")
        account = Account.from_json(url, response.json())
        self._account_url = url
        return account

    async def _kid(self) -> str:
        if self._account_url is None:
            await self.find_account()
        assert self._account_url is not None
        return self._account_url

    async def _post(self, url: str, payload: dict[str, Any] | None) -> AcmeResponse:
        return await self._transport.post(
            url, payload, key=self._key, kid=await self._kid()
        )

    # --- orders ------------------------------------------------------------

    async def new_order(
        self,
        names: Sequence[str],
        *,
        profile: str | None = None,
        replaces: str | None = None,
    ) -> Order:
        """Create an order for ``names`` (``*.`` wildcards allowed).

        ``profile`` must be one of the directory's ``meta.profiles``
        (InvalidProfileError otherwise, before anything is ordered); ``replaces``
        is the ARI identifier of the certificate this one renews.
        """
        clean = normalize_names(names)
        directory = await self.directory()
        if profile is not None and profile not in directory.profiles:
            offered = ", ".join(sorted(directory.profiles)) or "none"
            raise InvalidProfileError(
                InvalidProfileError.problem_type,
                f"profile {profile!r} is not offered by the CA (offered: {offered})",
            )
        payload: dict[str, Any] = {
            "identifiers": [{"type": "dns", "value": name} for name in clean]
        }
        if profile is not None:
            payload["profile"] = profile
        if replaces is not None:
            payload["replaces"] = replaces
        response = await self._post(directory.new_order, payload)
        url = response.location
        if url is None:
            raise MalformedResponseError("newOrder returned no Location")
        return Order.from_json(url, response.json())

    async def get_order(self, url: str) -> Order:
        """Fetch an order (POST-as-GET)."""
        return Order.from_json(url, (await self._post(url, None)).json())

    async def get_authorization(self, url: str) -> Authorization:
        """Fetch an authorization (POST-as-GET)."""
        return Authorization.from_json(url, (await self._post(url, None)).json())

    async def respond_to_challenge(self, url: str) -> Challenge:
        """Tell the CA that the challenge is ready to be validated."""
        return Challenge.from_json((await self._post(url, {})).json())

    async def wait_for_authorization(
        self, url: str, answered: str | None = None
    ) -> Authorization:
        """Poll an authorization until valid; raise AuthorizationInvalidError otherwise.

        ``answered`` is the type of the challenge the client answered. A CA
        that keeps that challenge pending with an ``error`` (smallstep's
        step-ca and Caddy) waits for it to be POSTed again (RFC 8555 section
        8.2): it is, up to ``challenge_retries`` times, after the CA's
        Retry-After or a short back-off; then the CA's error ends the wait.
        """
        attempts = 1

        async def retry(authz: Authorization, response: AcmeResponse) -> bool:
            nonlocal attempts
            challenge = authz.challenge(answered) if answered else None
            if (
                challenge is None
                or challenge.status != STATUS_PENDING
                or challenge.error is None
            ):
                return False
            if attempts > self._challenge_retries:
                raise AuthorizationInvalidError(
                    authz.name, authz.status, challenge.error, attempts=attempts
                )
            first = self._challenge_retry_delay
            delay = min(first * 2.0 ** (attempts - 1), first * _CHALLENGE_RETRY_GROWTH)
            if (retry_after := response.retry_after) is not None:
                delay = max(delay, (retry_after - datetime.now(UTC)).total_seconds())
            _LOGGER.debug(
                "%s: the CA could not validate %s (%s); asking again in %.1fs",
                authz.name,
                challenge.type,
                challenge.error,
                delay,
            )
            await asyncio.sleep(min(delay, self._max_retry_after))
            attempts += 1
            await self.respond_to_challenge(challenge.url)
            return True

        authz = await self._poll(
            url,
            Authorization.from_json,
            lambda item: item.status not in (STATUS_PENDING, STATUS_PROCESSING),
            retry,
        )
        if authz.status != STATUS_VALID:
            raise AuthorizationInvalidError(
                authz.name, authz.status, authz.failed_challenge_error()
            )
        return authz

    async def wait_for_order(self, url: str, statuses: frozenset[str]) -> Order:
        """Poll an order until it reaches one of ``statuses`` or becomes invalid."""
        order = await self._poll(
            url,
            Order.from_json,
            lambda item: item.status in statuses or item.status == STATUS_INVALID,
        )
        if order.status == STATUS_INVALID:
            raise OrderInvalidError(order.url, order.error)
        return order

    async def finalize_order(self, order: Order, csr_der: bytes) -> Order:
        """Send the CSR; returns the order (usually ``processing`` or ``valid``)."""
        response = await self._post(order.finalize, {"csr": b64url(csr_der)})
        return Order.from_json(order.url, response.json())

    async def download_certificate(
        self, url: str, *, preferred_chain: str | None = None
    ) -> str:
        """Download the PEM chain; with ``preferred_chain``, pick the alternate whose
        top issuer CN matches it (else the default chain)."""
        response = await self._post(url, None)
        default = self._pem_chain(response)
        if not preferred_chain or _matches(default, preferred_chain):
            return default
        for alternate_url in response.links("alternate")[:MAX_ALTERNATE_CHAINS]:
            alternate = self._pem_chain(await self._post(alternate_url, None))
            if _matches(alternate, preferred_chain):
                return alternate
        _LOGGER.debug("no chain leads to %r, using the default one", preferred_chain)
        return default

    @staticmethod
    def _pem_chain(response: AcmeResponse) -> str:
        if response.content_type not in (PEM_CHAIN_TYPE, "application/x-pem-file", ""):
            raise MalformedResponseError(
                f"certificate has content type {response.content_type}"
            )
        text = response.body.decode("ascii", "replace")
        try:
            parse_pem_certificates(text)
        except CertificateFormatError as err:
            raise MalformedResponseError("certificate is not a PEM chain") from err
        return text

    async def _poll[T: (Authorization, Order)](
        self,
        url: str,
        parse: Callable[[str, dict[str, Any]], T],
        done: Callable[[T], bool],
        retry: Callable[[T, AcmeResponse], Awaitable[bool]] | None = None,
    ) -> T:
        """Fetch ``url`` until ``done``; ``retry`` may act instead of waiting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._poll_timeout
        attempt = 0
        while True:
            response = await self._post(url, None)
            item = parse(url, response.json())
            if done(item):
                return item
            if retry is not None and await retry(item, response):
                attempt = 0
                continue
            delay = self._delay(response, attempt)
            attempt += 1
            if loop.time() + delay > deadline:
                raise PollTimeoutError(
                    f"{url} still {item.status} after {self._poll_timeout}s"
                )
            await asyncio.sleep(delay)

    def _delay(self, response: AcmeResponse, attempt: int = 0) -> float:
        """Seconds to the next poll, never before the CA's Retry-After, bounded.

        Without Retry-After the wait starts short and doubles up to the poll
        interval: most CAs finish a validation or an order within a second.
        """
        delay: float = min(self._poll_interval, FIRST_POLL_DELAY * 2.0**attempt)
        if (retry_after := response.retry_after) is not None:
            delay = max(delay, (retry_after - datetime.now(UTC)).total_seconds())
        return min(delay, self._max_retry_after)

    # --- issuance -------------------------------------------------------------

    #: Order, prove control of the names, finalize, download (issue.py).
    issue_certificate = issue_certificate

    # --- ARI ------------------------------------------------------------------

    async def renewal_info(
        self, certificate: x509.Certificate | str
    ) -> RenewalInfo | None:
        """The CA's suggested renewal window, or None without ARI support or AKI."""
        cert = (
            parse_pem_certificates(certificate)[0]
            if isinstance(certificate, str)
            else certificate
        )
        directory = await self.directory()
        cert_id = ari_cert_id(cert)
        if directory.renewal_info is None or cert_id is None:
            return None
        response = await self._transport.get(
            f"{directory.renewal_info.rstrip('/')}/{cert_id}"
        )
        return RenewalInfo.from_json(response.json(), response.retry_after)


def _matches(chain_pem: str, issuer_cn: str) -> bool:
    top = top_issuer_common_name(parse_pem_certificates(chain_pem))
    return top is not None and top.strip().casefold() == issuer_cn.strip().casefold()
