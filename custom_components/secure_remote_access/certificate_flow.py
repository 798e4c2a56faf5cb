"""The certificate steps shared by the config flow and the options flow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Any

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

from .certificate import CertificateSettings, async_acme_client, async_register_account
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
    CONF_WILDCARD,
    CUSTOM_CA,
    LETSENCRYPT,
    LOGGER,
    SECTION_TESTING,
    directory_url_for,
)
from .helpers import default_certificate_dir, flatten_sections, path_is_allowed
from .protocol.acme import (
    AcmeConnectionError,
    AcmeError,
    AcmeProblemError,
    ExternalAccountRequiredError,
    KeyType,
    MalformedResponseError,
    UnauthorizedError,
)
from .protocol.delegation import (
    MAX_CERTIFICATE_NAMES,
    DelegationError,
    DuckDnsNameError,
    InvalidNameError,
    expected_records,
    parse_extra_names,
    resolve_delegations,
)

CERTIFICATE_KEYS = (
    CONF_ACME_DIRECTORY,
    CONF_EMAIL,
    CONF_KEY_TYPE,
    CONF_WILDCARD,
    CONF_EXTRA_NAMES,
    CONF_PROFILE,
    CONF_CERTIFICATE_PATH,
    CONF_PRIVATE_KEY_PATH,
    CONF_ACME_CA_BUNDLE,
    CONF_EAB_KID,
    CONF_EAB_HMAC_KEY,
    CONF_DNS_SERVER,
)
_SECRET_KEYS = (CONF_EAB_HMAC_KEY,)


@dataclass(slots=True)
class CertificateCheck:
    """The outcome of checking the certificate form."""

    options: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    terms_url: str = ""
    detail: str = ""
    records: str = ""


async def async_defaults(hass: HomeAssistant) -> dict[str, Any]:
    """Suggested values for a new certificate configuration."""
    directory = await hass.async_add_executor_job(default_certificate_dir, hass)
    return {
        CONF_ACME_DIRECTORY: LETSENCRYPT,
        CONF_KEY_TYPE: KeyType.EC_P256.value,
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
    fields[vol.Optional(SECTION_TESTING, default={})] = section(
        vol.Schema({vol.Optional(CONF_DNS_SERVER): TextSelector()}),
        {"collapsed": True},
    )
    return vol.Schema(fields)


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


def _clean(user_input: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in CERTIFICATE_KEYS:
        if key == CONF_EXTRA_NAMES:
            continue  # parsed and checked by _check_extra_names
        value = user_input.get(key)
        if isinstance(value, str):
            value = value.strip()
        if value not in (None, ""):
            options[key] = value
    options[CONF_WILDCARD] = bool(user_input.get(CONF_WILDCARD, False))
    if options.get(CONF_ACME_DIRECTORY) == CUSTOM_CA:
        # Another CA is stored as its directory URL, the known ones by key.
        options[CONF_ACME_DIRECTORY] = str(
            user_input.get(CONF_ACME_DIRECTORY_URL) or ""
        ).strip()
    return options


def _check_paths(hass: HomeAssistant, options: dict[str, Any]) -> dict[str, str]:
    """Blocking: the paths must be allowed, distinct, and the CA bundle readable."""
    errors: dict[str, str] = {}
    for key in (CONF_CERTIFICATE_PATH, CONF_PRIVATE_KEY_PATH):
        if not path_is_allowed(hass, options[key]):
            errors[key] = "path_not_allowed"
        elif Path(options[key]).is_dir():
            errors[key] = "path_is_directory"
    if (
        not errors
        and Path(options[CONF_CERTIFICATE_PATH]).resolve()
        == Path(options[CONF_PRIVATE_KEY_PATH]).resolve()
    ):
        errors[CONF_PRIVATE_KEY_PATH] = "same_path"
    bundle = options.get(CONF_ACME_CA_BUNDLE)
    if bundle is not None and (
        not path_is_allowed(hass, bundle)
        or not Path(bundle).is_file()
        or not os.access(bundle, os.R_OK)
    ):
        errors[CONF_ACME_CA_BUNDLE] = "ca_bundle_unreadable"
    return errors


async def async_check_certificate_input(
    hass: HomeAssistant, user_input: Mapping[str, Any], domains: list[str]
) -> CertificateCheck:
    """Check the form, then ask the CA's directory about terms, profiles and EAB."""
    user_input = flatten_sections(user_input)
    check = CertificateCheck(options=_clean(user_input))
    options = check.options
    directory_choice = options[CONF_ACME_DIRECTORY]
    if directory_choice not in ACME_DIRECTORIES and not directory_choice.startswith(
        "https://"
    ):
        check.errors[CONF_ACME_DIRECTORY_URL] = "invalid_directory_url"
    if bool(options.get(CONF_EAB_KID)) != bool(options.get(CONF_EAB_HMAC_KEY)):
        check.errors[CONF_EAB_KID] = "eab_incomplete"
    email = options.get(CONF_EMAIL)
    if email is not None and ("@" not in email or " " in email):
        check.errors[CONF_EMAIL] = "invalid_email"
    _check_extra_names(check, user_input.get(CONF_EXTRA_NAMES), domains)
    check.errors.update(await hass.async_add_executor_job(_check_paths, hass, options))
    if check.errors:
        return check

    settings = CertificateSettings.from_options(domains, options)
    assert settings is not None
    if settings.extra_names:
        try:
            await resolve_delegations(
                settings.extra_names,
                domains,
                [settings.dns_server] if settings.dns_server else None,
            )
        except DelegationError as err:
            LOGGER.debug("CNAME delegation not in place: %s", err.message)
            check.errors[CONF_EXTRA_NAMES] = "cname_missing"
            check.records = ", ".join(expected_records(err))
            return check
    try:
        client = await async_acme_client(hass, settings)
        directory = await client.directory()
    except (AcmeConnectionError, MalformedResponseError) as err:
        LOGGER.debug("ACME directory %s not usable: %s", settings.directory_url, err)
        check.errors["base"] = "cannot_connect_ca"
        check.detail = str(err)
        return check
    except AcmeError as err:
        check.errors["base"] = "acme_error"
        check.detail = str(err)
        return check
    profile = options.get(CONF_PROFILE)
    if profile and profile not in directory.profiles:
        check.errors[CONF_PROFILE] = "unknown_profile"
        check.detail = ", ".join(sorted(directory.profiles)) or "-"
    if directory.external_account_required and not options.get(CONF_EAB_KID):
        check.errors[CONF_EAB_KID] = "eab_required"
    check.terms_url = directory.terms_of_service or ""
    return check


def _check_extra_names(check: CertificateCheck, raw: Any, domains: list[str]) -> None:
    """Parse the names outside duckdns.org into the options, or set a form error."""
    try:
        extra = parse_extra_names(raw or "")
    except DuckDnsNameError as err:
        check.errors[CONF_EXTRA_NAMES] = "extra_name_duckdns"
        check.detail = err.name
        return
    except InvalidNameError as err:
        check.errors[CONF_EXTRA_NAMES] = "invalid_extra_name"
        check.detail = err.name
        return
    total = len(domains) * (2 if check.options[CONF_WILDCARD] else 1) + len(extra)
    if total > MAX_CERTIFICATE_NAMES:
        check.errors[CONF_EXTRA_NAMES] = "too_many_names"
        check.detail = str(MAX_CERTIFICATE_NAMES)
        return
    if extra:
        check.options[CONF_EXTRA_NAMES] = extra


async def async_accept_terms(
    hass: HomeAssistant, options: Mapping[str, Any], domains: list[str]
) -> tuple[dict[str, str], str]:
    """Register (or find) the ACME account; return form errors and a detail."""
    settings = CertificateSettings.from_options(domains, options)
    assert settings is not None
    try:
        await async_register_account(hass, settings)
    except (ExternalAccountRequiredError, UnauthorizedError) as err:
        return {"base": "invalid_eab"}, err.detail or str(err)
    except AcmeProblemError as err:
        return {"base": "acme_error"}, err.detail or str(err)
    except AcmeError as err:
        return {"base": "cannot_connect_ca"}, str(err)
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
        if user_input is None:
            return self._certificate_form(await self._async_certificate_values())
        check = await async_check_certificate_input(
            self.hass, user_input, self._certificate_domains()
        )
        if check.errors:
            return self._certificate_form(
                user_input, check.errors, check.detail, check.records
            )
        self._certificate = check.options
        self._terms_url = check.terms_url
        return await self.async_step_terms()

    async def async_step_terms(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Accept the CA's terms; the ACME account is created here."""
        errors: dict[str, str] = {}
        detail = ""
        if user_input is not None:
            if not user_input.get(CONF_ACCEPT_TERMS):
                errors[CONF_ACCEPT_TERMS] = "terms_required"
            else:
                errors, detail = await async_accept_terms(
                    self.hass, self._certificate, self._certificate_domains()
                )
                if errors.get("base") == "invalid_eab":
                    # Only the certificate form can correct the credentials.
                    return self._certificate_form(
                        self._certificate, {CONF_EAB_HMAC_KEY: "invalid_eab"}, detail
                    )
                if not errors:
                    return await self._async_certificate_done(self._certificate)
        return self.async_show_form(
            step_id="terms",
            data_schema=terms_schema(),
            errors=errors,
            description_placeholders={
                "terms_url": self._terms_url or "-",
                "directory": directory_url_for(self._certificate[CONF_ACME_DIRECTORY]),
                "detail": detail,
            },
        )

    def _certificate_form(
        self,
        values: Mapping[str, Any],
        errors: dict[str, str] | None = None,
        detail: str = "",
        records: str = "",
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
                "detail": detail,
                "records": records,
            },
        )
