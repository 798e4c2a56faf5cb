"""ACME accounts: the installation's account store, registration and healing.

One account per CA directory URL, kept in private storage with the terms of
service the user accepted for it. When a CA no longer knows the account (a
private CA was reset) or deactivated it, a renewal registers a new one with
the same contact and External Account Binding, but only under the terms the
user accepted: changed terms need the user (a Repairs issue whose fix flow
shows them).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from homeassistant.const import __version__ as ha_version
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.storage import Store
from homeassistant.util.hass_dict import HassKey

from .certificate_settings import CertificateSettings
from .const import DOMAIN, LOGGER
from .protocol.acme import (
    AccountDoesNotExistError,
    AccountKey,
    AcmeClient,
    AcmeError,
    account_gone,
    describe_acme_error,
)

STORAGE_VERSION: Final = 1
STORAGE_KEY: Final = f"{DOMAIN}.acme_accounts"
DATA_ACCOUNT_STORE: HassKey[AcmeAccountStore] = HassKey(f"{DOMAIN}_acme_accounts")
USER_AGENT: Final = f"secure-remote-access/0.1 HomeAssistant/{ha_version}"
# Stored per directory URL: the key (PEM), the account URL, the terms of
# service accepted for it ("" for a CA without terms; absent for accounts
# made before they were stored) and the URLs of earlier accounts.
_KEY: Final = "key"
_URL: Final = "url"
_TERMS: Final = "terms"
_PREVIOUS: Final = "previous"


class AcmeAccountStore:
    """ACME account keys and URLs, one per directory URL, in private storage."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Create the store (loaded lazily)."""
        self._hass = hass
        self._store: Store[dict[str, dict[str, Any]]] = Store(
            hass, STORAGE_VERSION, STORAGE_KEY, private=True, atomic_writes=True
        )
        self._accounts: dict[str, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        #: Held while a lost account is replaced: entries sharing it register
        #: one new account, not one each.
        self.replacing = asyncio.Lock()

    async def _load(self) -> dict[str, dict[str, Any]]:
        if self._accounts is None:
            self._accounts = await self._store.async_load() or {}
        return self._accounts

    async def async_key(self, directory_url: str) -> tuple[AccountKey, str | None]:
        """The account key for a CA (created on first use) and its account URL."""
        async with self._lock:
            accounts = await self._load()
            stored = accounts.get(directory_url)
            if stored is not None:
                return AccountKey.from_pem(stored[_KEY]), stored.get(_URL) or None
            key = await self._hass.async_add_executor_job(AccountKey.generate)
            accounts[directory_url] = {_KEY: key.to_pem(), _URL: ""}
            await self._store.async_save(accounts)
            return key, None

    async def async_account_urls(self) -> frozenset[str]:
        """Every account URL of ours, at every CA, earlier ones included
        (persistent records naming one are ours)."""
        async with self._lock:
            accounts = await self._load()
            return frozenset(
                url
                for item in accounts.values()
                for url in (item.get(_URL), *item.get(_PREVIOUS, ()))
                if url
            )

    async def async_accepted_terms(self, directory_url: str) -> str | None:
        """The terms of service accepted for the CA's account; None when unknown."""
        async with self._lock:
            terms = (await self._load()).get(directory_url, {}).get(_TERMS)
            return terms if isinstance(terms, str) else None

    async def async_set_url(
        self, directory_url: str, account_url: str, terms: str | None = None
    ) -> None:
        """Remember the account URL the CA gave us (and the terms accepted for it)."""
        async with self._lock:
            stored = (await self._load())[directory_url]
            changes = {_URL: account_url} | ({} if terms is None else {_TERMS: terms})
            if any(stored.get(key) != value for key, value in changes.items()):
                stored.update(changes)
                await self._store.async_save(self._accounts or {})

    async def async_replace(
        self, directory_url: str, key: AccountKey, account_url: str, terms: str
    ) -> None:
        """A new account replaces the CA's old one (which stays ours)."""
        async with self._lock:
            accounts = await self._load()
            old = accounts.get(directory_url, {})
            previous = [*old.get(_PREVIOUS, ()), old.get(_URL) or ""]
            accounts[directory_url] = {
                _KEY: key.to_pem(),
                _URL: account_url,
                _TERMS: terms,
                _PREVIOUS: [url for url in dict.fromkeys(previous) if url],
            }
            await self._store.async_save(accounts)


@callback
def account_store(hass: HomeAssistant) -> AcmeAccountStore:
    """The one account store of this Home Assistant instance."""
    if DATA_ACCOUNT_STORE not in hass.data:
        hass.data[DATA_ACCOUNT_STORE] = AcmeAccountStore(hass)
    return hass.data[DATA_ACCOUNT_STORE]


def _client(
    hass: HomeAssistant,
    settings: CertificateSettings,
    key: AccountKey,
    account_url: str | None,
) -> AcmeClient:
    return AcmeClient(
        async_get_clientsession(hass),
        settings.directory_url,
        key,
        user_agent=USER_AGENT,
        ca_bundle=settings.ca_bundle,
        account_url=account_url,
    )


async def async_acme_client(
    hass: HomeAssistant, settings: CertificateSettings
) -> AcmeClient:
    """An ACME client on Home Assistant's shared session with the stored account key."""
    key, account_url = await account_store(hass).async_key(settings.directory_url)
    return _client(hass, settings, key, account_url)


async def _async_terms(client: AcmeClient) -> str:
    return (await client.directory()).terms_of_service or ""


async def async_register_account(
    hass: HomeAssistant, settings: CertificateSettings
) -> AcmeClient:
    """Create (or find) the ACME account after the user accepted the terms.

    The CA refuses a key whose account it deactivated for good: a new
    account (with a new key) replaces it then.
    """
    client = await async_acme_client(hass, settings)
    try:
        account = await client.register_account(
            terms_of_service_agreed=True, contact_email=settings.email, eab=settings.eab
        )
    except AcmeError as err:
        if not account_gone(err):
            raise
        async with account_store(hass).replacing:
            return await async_new_account(hass, settings)
    await account_store(hass).async_set_url(
        settings.directory_url, account.url, await _async_terms(client)
    )
    return client


async def async_ensure_account(
    hass: HomeAssistant, settings: CertificateSettings, client: AcmeClient
) -> None:
    """Look the account up when its URL is not stored (register it if the CA
    has none for the key: the entry's options were made by accepting the terms)."""
    if client.account_url is not None:
        return
    try:
        account = await client.find_account()
    except AccountDoesNotExistError:
        account = await client.register_account(
            terms_of_service_agreed=True,
            contact_email=settings.email,
            eab=settings.eab,
        )
    await account_store(hass).async_set_url(
        settings.directory_url, account.url, await _async_terms(client)
    )


async def async_new_account(
    hass: HomeAssistant, settings: CertificateSettings
) -> AcmeClient:
    """Register a new account (a new key: a deactivated one's key is refused)
    with the entry's contact and EAB, under the CA's current terms."""
    key = await hass.async_add_executor_job(AccountKey.generate)
    client = _client(hass, settings, key, None)
    account = await client.register_account(
        terms_of_service_agreed=True, contact_email=settings.email, eab=settings.eab
    )
    await account_store(hass).async_replace(
        settings.directory_url, key, account.url, await _async_terms(client)
    )
    return client


async def async_account_replaced(
    hass: HomeAssistant, directory_url: str, lost_url: str | None
) -> bool:
    """Whether the CA's account is already another than the lost one (another
    entry, or its Repairs fix, registered it)."""
    _key, stored_url = await account_store(hass).async_key(directory_url)
    return bool(stored_url) and stored_url != lost_url


class AccountTermsChangedError(Exception):
    """The account is gone and the CA's terms are not known to be the ones accepted.

    ``accepted`` is None for an account made before the accepted terms were
    stored: the terms may not have changed, but nobody knows.
    """

    def __init__(
        self,
        terms: str,
        lost: AcmeError,
        account_url: str | None,
        accepted: str | None,
    ) -> None:
        """Remember the CA's terms, how it said the account is gone and its URL."""
        super().__init__(terms)
        self.terms = terms
        self.accepted = accepted
        self.detail = describe_acme_error(lost)
        self.account_url = account_url


async def async_heal_account(
    hass: HomeAssistant,
    settings: CertificateSettings,
    client: AcmeClient,
    lost: AcmeError,
) -> AcmeClient:
    """A client with a working account after the CA said ``client``'s is gone.

    Another entry may have registered the new account already; otherwise one
    is registered when the CA's terms are the ones the user accepted (or the
    CA has none). Raises AccountTermsChangedError when they are not.
    """
    store = account_store(hass)
    async with store.replacing:
        if await async_account_replaced(
            hass, settings.directory_url, client.account_url
        ):
            return await async_acme_client(hass, settings)
        terms = await _async_terms(client)
        accepted = await store.async_accepted_terms(settings.directory_url)
        if terms and terms != accepted:
            raise AccountTermsChangedError(terms, lost, client.account_url, accepted)
        LOGGER.warning(
            "The certificate authority %s no longer accepts the ACME account %s "
            "(%s); registering a new account",
            settings.directory_url,
            client.account_url,
            describe_acme_error(lost),
        )
        return await async_new_account(hass, settings)
