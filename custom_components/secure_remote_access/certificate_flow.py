"""The certificate steps shared by the config flow and the options flow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import os
from pathlib import Path
import ssl
from typing import Any, Final
from urllib.parse import unquote

from homeassistant.config_entries import ConfigEntryBaseFlow, ConfigFlowResult
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    BooleanSelector,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from .account import async_acme_client, async_register_account
from .certificate_settings import CertificateSettings, certificate_options
from .const import (
    ACME_DIRECTORIES,
    CONF_ACCEPT_TERMS,
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
    LETSENCRYPT,
    LOGGER,
    SECTION_TESTING,
    VALIDATION_AUTOMATIC,
    VALIDATION_METHODS,
    directory_url_for,
)
from .helpers import (
    allowed_roots,
    default_certificate_dir,
    files_of_other_entries,
    flatten_sections,
    path_is_allowed,
    same_file,
)
from .protocol.acme import (
    AcmeCaBundleError,
    AcmeCertificateError,
    AcmeConnectionError,
    AcmeError,
    AcmeProblemError,
    ExternalAccountRequiredError,
    KeyType,
    MalformedResponseError,
    UnauthorizedError,
)
from .protocol.acme.jws import is_b64url
from .protocol.delegation import (
    MAX_CERTIFICATE_NAMES,
    DelegationError,
    expected_records,
    parse_extra_names,
    resolve_delegations,
)
from .protocol.dnsutil import is_nameserver
from .protocol.names import PERSIST_PREFIX, DuckDnsNameError, InvalidNameError

_SECRET_KEYS = (CONF_EAB_HMAC_KEY,)
STEP_TERMS: Final = "terms"
STEP_ACCOUNT: Final = "account"  # the terms step of a CA without terms


@dataclass(slots=True)
class CertificateCheck:
    """The outcome of checking the certificate form.

    ``placeholders`` fill the error messages: ``detail`` (a reason or a
    value), ``records`` (CNAME records to create) and ``allowed`` (the
    directories certificates may be written to).
    """

    options: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    terms_url: str = ""
    placeholders: dict[str, str] = field(
        default_factory=lambda: {"detail": "", "records": "", "allowed": ""}
    )

    def fail(self, key: str, error: str, detail: str = "") -> None:
        """Set an error on a field (``base`` for the form), with its detail."""
        self.errors[key] = error
        if detail:
            self.placeholders["detail"] = detail


async def async_defaults(hass: HomeAssistant) -> dict[str, Any]:
    """Suggested values for a new certificate configuration."""
    directory = await hass.async_add_executor_job(default_certificate_dir, hass)
    return {
        CONF_ACME_DIRECTORY: LETSENCRYPT,
        CONF_KEY_TYPE: KeyType.EC_P256.value,
        CONF_VALIDATION_METHOD: VALIDATION_AUTOMATIC,
        CONF_WILDCARD: False,
        CONF_CERTIFICATE_PATH: str(directory / "fullchain.pem"),
        CONF_PRIVATE_KEY_PATH: str(directory / "privkey.pem"),
    }


def certificate_schema() -> vol.Schema:
    """The certificate form."""
    fields: dict[vol.Marker, Any] = {
        vol.Required(CONF_ACME_DIRECTORY): SelectSelector(
            SelectSelectorConfig(
                options=[*ACME_DIRECTORIES, CUSTOM_CA],
                mode=SelectSelectorMode.DROPDOWN,
                translation_key=CONF_ACME_DIRECTORY,
            )
        ),
        vol.Optional(CONF_ACME_DIRECTORY_URL): TextSelector(
            TextSelectorConfig(type=TextSelectorType.URL)
        ),
        vol.Optional(CONF_EMAIL): TextSelector(
            TextSelectorConfig(type=TextSelectorType.EMAIL)
        ),
        vol.Required(CONF_KEY_TYPE): SelectSelector(
            SelectSelectorConfig(
                options=[key_type.value for key_type in KeyType],
                mode=SelectSelectorMode.DROPDOWN,
                translation_key=CONF_KEY_TYPE,
            )
        ),
        vol.Required(CONF_VALIDATION_METHOD): SelectSelector(
            SelectSelectorConfig(
                options=list(VALIDATION_METHODS),
                mode=SelectSelectorMode.DROPDOWN,
                translation_key=CONF_VALIDATION_METHOD,
            )
        ),
        vol.Required(CONF_WILDCARD): BooleanSelector(),
        vol.Optional(CONF_EXTRA_NAMES): TextSelector(
            TextSelectorConfig(multiline=True)
        ),
        vol.Optional(CONF_PROFILE): TextSelector(),
        vol.Required(CONF_CERTIFICATE_PATH): TextSelector(),
        vol.Required(CONF_PRIVATE_KEY_PATH): TextSelector(),
        vol.Optional(CONF_ACME_CA_BUNDLE): TextSelector(),
        vol.Optional(CONF_EAB_KID): TextSelector(),
        vol.Optional(CONF_EAB_HMAC_KEY): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
    }
    # No default on the section: the frontend would take the default ({})
    # instead of the suggested values inside it, and drop the stored ones.
    fields[vol.Optional(SECTION_TESTING)] = section(
        vol.Schema({vol.Optional(CONF_DNS_SERVER): TextSelector()}),
        {"collapsed": True},
    )
    return vol.Schema(fields)


def terms_for_display(url: str) -> str:
    """The terms as a link; terms given inline (a ``data:`` URL) as their text."""
    if url.startswith("data:"):
        _, _, payload = url.partition(",")
        return f"“{unquote(payload).strip()}”"
    return f"[{url}]({url})"


def terms_schema() -> vol.Schema:
    """The terms-of-service confirmation form."""
    return vol.Schema(
        {vol.Required(CONF_ACCEPT_TERMS, default=False): BooleanSelector()}
    )


def suggested_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values to prefill, without secrets; stored name lists as text."""
    suggested = {
        k: v for k, v in flatten_sections(values).items() if k not in _SECRET_KEYS
    }
    if CONF_DNS_SERVER in suggested:
        suggested[SECTION_TESTING] = {CONF_DNS_SERVER: suggested.pop(CONF_DNS_SERVER)}
    directory = suggested.get(CONF_ACME_DIRECTORY)
    if directory is not None and directory not in (*ACME_DIRECTORIES, CUSTOM_CA):
        # Another CA is stored as its directory URL.
        suggested[CONF_ACME_DIRECTORY] = CUSTOM_CA
        suggested[CONF_ACME_DIRECTORY_URL] = directory
    if isinstance(extra := suggested.get(CONF_EXTRA_NAMES), list | tuple):
        suggested[CONF_EXTRA_NAMES] = ", ".join(extra)
    return suggested


def allowed_directories(hass: HomeAssistant) -> str:
    """The directories this installation lets certificates be written to."""
    return ", ".join(allowed_roots(hass))


def _check_paths(
    hass: HomeAssistant, check: CertificateCheck, taken: Mapping[str, list[str]]
) -> None:
    """Blocking: the paths must be allowed, distinct and no other entry's
    (``taken``: entry title -> its files), the CA bundle a certificate."""
    options = check.options
    for key in (CONF_CERTIFICATE_PATH, CONF_PRIVATE_KEY_PATH):
        owner = next(
            (
                title
                for title, files in taken.items()
                if any(same_file(options[key], file) for file in files)
            ),
            None,
        )
        if not path_is_allowed(hass, options[key]):
            check.fail(key, "path_not_allowed")
            check.placeholders["allowed"] = allowed_directories(hass)
        elif Path(options[key]).is_dir():
            check.fail(key, "path_is_directory")
        elif owner is not None:
            check.fail(key, "path_in_use", owner)
    if (
        CONF_CERTIFICATE_PATH not in check.errors
        and CONF_PRIVATE_KEY_PATH not in check.errors
        and same_file(options[CONF_CERTIFICATE_PATH], options[CONF_PRIVATE_KEY_PATH])
    ):
        check.fail(CONF_PRIVATE_KEY_PATH, "same_path")
    bundle = options.get(CONF_ACME_CA_BUNDLE)
    if bundle is None:
        return
    if (
        not path_is_allowed(hass, bundle)
        or not Path(bundle).is_file()
        or not os.access(bundle, os.R_OK)
    ):
        check.fail(CONF_ACME_CA_BUNDLE, "ca_bundle_unreadable")
        return
    try:
        ssl.create_default_context(cafile=bundle)
    except ssl.SSLError, OSError:
        check.fail(CONF_ACME_CA_BUNDLE, "ca_bundle_invalid", bundle)


def _check_fields(check: CertificateCheck) -> None:
    """The checks that need neither the file system nor the network."""
    options = check.options
    directory_choice = options[CONF_ACME_DIRECTORY]
    if directory_choice not in ACME_DIRECTORIES and not directory_choice.startswith(
        "https://"
    ):
        check.fail(CONF_ACME_DIRECTORY_URL, "invalid_directory_url")
    if bool(options.get(CONF_EAB_KID)) != bool(options.get(CONF_EAB_HMAC_KEY)):
        check.fail(CONF_EAB_KID, "eab_incomplete")
    elif options.get(CONF_EAB_HMAC_KEY) and not is_b64url(options[CONF_EAB_HMAC_KEY]):
        check.fail(CONF_EAB_HMAC_KEY, "invalid_eab_key")
    email = options.get(CONF_EMAIL)
    if email is not None and ("@" not in email or " " in email):
        check.fail(CONF_EMAIL, "invalid_email")
    dns_server = options.get(CONF_DNS_SERVER)
    if dns_server is not None and not is_nameserver(dns_server):
        # The field sits in a section, where the frontend shows no field errors.
        check.fail("base", "invalid_dns_server", dns_server)


async def _delegation_problem(
    settings: CertificateSettings, domains: list[str]
) -> DelegationError | None:
    """Why the own names are not delegated (None: they are).

    The ``_acme-challenge`` records work with every CA; with dns-persist-01
    allowed, ``_validation-persist`` records are enough.
    """
    nameservers = settings.nameservers
    try:
        await resolve_delegations(settings.extra_names, domains, nameservers)
    except DelegationError as err:
        if not settings.persist_allowed:
            return err
        try:
            await resolve_delegations(
                settings.extra_names, domains, nameservers, prefix=PERSIST_PREFIX
            )
        except DelegationError:
            return err
    return None


async def async_check_certificate_input(
    hass: HomeAssistant,
    user_input: Mapping[str, Any],
    domains: list[str],
    own_entry_id: str = "",
) -> CertificateCheck:
    """Check the form, then ask the CA's directory about terms, profiles and EAB.

    ``own_entry_id``: the entry being changed (its own files are no conflict).
    """
    user_input = flatten_sections(user_input)
    check = CertificateCheck(options=certificate_options(user_input))
    options = check.options
    _check_fields(check)
    _check_extra_names(check, user_input.get(CONF_EXTRA_NAMES), domains)
    taken = files_of_other_entries(hass, own_entry_id)
    await hass.async_add_executor_job(_check_paths, hass, check, taken)
    if check.errors:
        return check

    settings = CertificateSettings.parse(domains, options)
    if settings.extra_names and (err := await _delegation_problem(settings, domains)):
        LOGGER.debug("CNAME delegation not in place: %s", err.message)
        check.fail(CONF_EXTRA_NAMES, "cname_missing")
        check.placeholders["records"] = ", ".join(expected_records(err))
        return check
    try:
        client = await async_acme_client(hass, settings)
        directory = await client.directory()
    except AcmeCaBundleError as err:
        check.fail(
            CONF_ACME_CA_BUNDLE, "ca_bundle_invalid", options[CONF_ACME_CA_BUNDLE]
        )
        LOGGER.debug("CA bundle not usable: %s", err)
        return check
    except AcmeCertificateError as err:
        # A private CA (Pebble, step-ca): its root goes in the CA bundle field.
        check.fail(CONF_ACME_CA_BUNDLE, "ca_untrusted", str(err))
        return check
    except (AcmeConnectionError, MalformedResponseError) as err:
        LOGGER.debug("ACME directory %s not usable: %s", settings.directory_url, err)
        check.fail("base", "cannot_connect_ca", str(err))
        return check
    except AcmeError as err:
        check.fail("base", "acme_error", str(err))
        return check
    profile = options.get(CONF_PROFILE)
    if profile and profile not in directory.profiles:
        check.fail(
            CONF_PROFILE,
            "unknown_profile",
            ", ".join(sorted(directory.profiles)) or "-",
        )
    if directory.external_account_required and not options.get(CONF_EAB_KID):
        check.fail(CONF_EAB_KID, "eab_required")
    check.terms_url = directory.terms_of_service or ""
    return check


def _check_extra_names(check: CertificateCheck, raw: Any, domains: list[str]) -> None:
    """Parse the names outside duckdns.org into the options, or set a form error."""
    try:
        extra = parse_extra_names(raw or "")
    except DuckDnsNameError as err:
        check.fail(CONF_EXTRA_NAMES, "extra_name_duckdns", err.name)
        return
    except InvalidNameError as err:
        check.fail(CONF_EXTRA_NAMES, "invalid_extra_name", err.name)
        return
    total = len(domains) * (2 if check.options[CONF_WILDCARD] else 1) + len(extra)
    if total > MAX_CERTIFICATE_NAMES:
        check.fail(CONF_EXTRA_NAMES, "too_many_names", str(MAX_CERTIFICATE_NAMES))
        return
    if extra:
        check.options[CONF_EXTRA_NAMES] = extra


async def async_accept_terms(
    hass: HomeAssistant, options: Mapping[str, Any], domains: list[str]
) -> tuple[dict[str, str], str]:
    """Register (or find) the ACME account; return form errors and a detail."""
    settings = CertificateSettings.parse(domains, options)
    try:
        await async_register_account(hass, settings)
    except (ExternalAccountRequiredError, UnauthorizedError) as err:
        return {"base": "invalid_eab"}, err.detail or str(err)
    except AcmeProblemError as err:
        return {"base": "acme_error"}, err.detail or str(err)
    except AcmeError as err:
        return {"base": "cannot_connect_ca"}, str(err)
    except ValueError as err:  # pragma: no cover - the form checks the HMAC key
        return {"base": "invalid_eab"}, str(err)
    return {}, ""


class CertificateSteps(ConfigEntryBaseFlow):
    """The certificate and terms steps, shared by the config and options flows."""

    _certificate: dict[str, Any]
    _terms_url: str

    def _certificate_domains(self) -> list[str]:
        """The DuckDNS names the certificate is for."""
        raise NotImplementedError

    async def _async_certificate_values(self) -> dict[str, Any]:
        """What the certificate form starts with."""
        return await async_defaults(self.hass)

    async def _async_certificate_done(
        self, options: dict[str, Any]
    ) -> ConfigFlowResult:
        """Store the accepted certificate options."""
        raise NotImplementedError

    async def async_step_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the CA, the key and where the certificate goes."""
        stored = await self._async_certificate_values()
        if user_input is None:
            return self._certificate_form(stored)
        if SECTION_TESTING not in user_input and stored.get(CONF_DNS_SERVER):
            # A client that leaves the section out keeps what is stored.
            user_input = {
                **user_input,
                SECTION_TESTING: {CONF_DNS_SERVER: stored[CONF_DNS_SERVER]},
            }
        check = await async_check_certificate_input(
            # An options flow's handler is its entry's id (a config flow's the domain).
            self.hass,
            user_input,
            self._certificate_domains(),
            str(self.handler),
        )
        if check.errors:
            return self._certificate_form(user_input, check.errors, check.placeholders)
        self._certificate = check.options
        self._terms_url = check.terms_url
        return await self.async_step_terms()

    async def async_step_terms(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Accept the CA's terms; the ACME account is created here.

        A CA without terms of service (step-ca, Caddy) gets the ``account``
        step instead: the same, without terms to accept.
        """
        has_terms = bool(self._terms_url)
        errors: dict[str, str] = {}
        detail = ""
        if user_input is not None:
            if has_terms and not user_input.get(CONF_ACCEPT_TERMS):
                errors[CONF_ACCEPT_TERMS] = "terms_required"
            else:
                errors, detail = await async_accept_terms(
                    self.hass, self._certificate, self._certificate_domains()
                )
                if errors.get("base") == "invalid_eab":
                    # Only the certificate form can correct the credentials.
                    return self._certificate_form(
                        self._certificate,
                        {CONF_EAB_HMAC_KEY: "invalid_eab"},
                        {"detail": detail},
                    )
                if not errors:
                    return await self._async_certificate_done(self._certificate)
        placeholders = {
            "directory": directory_url_for(self._certificate[CONF_ACME_DIRECTORY]),
            "detail": detail,
        }
        if has_terms:
            placeholders["terms_url"] = terms_for_display(self._terms_url)
        return self.async_show_form(
            step_id=STEP_TERMS if has_terms else STEP_ACCOUNT,
            data_schema=terms_schema() if has_terms else vol.Schema({}),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_account(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Create the ACME account at a CA that has no terms of service."""
        return await self.async_step_terms(user_input)

    def _certificate_form(
        self,
        values: Mapping[str, Any],
        errors: dict[str, str] | None = None,
        placeholders: Mapping[str, str] | None = None,
    ) -> ConfigFlowResult:
        return self.async_show_form(
            step_id="certificate",
            data_schema=self.add_suggested_values_to_schema(
                certificate_schema(),
                suggested_values(values),
            ),
            errors=errors or {},
            description_placeholders={
                "names": ", ".join(self._certificate_domains()),
                **CertificateCheck().placeholders,
                **(placeholders or {}),
            },
        )
