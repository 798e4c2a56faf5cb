"""Config flow for Secure Remote Access."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.typing import UNDEFINED
import probatio as vol

from .certificate_flow import CertificateSteps
from .certificate_settings import CertificateSettings
from .const import (
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_UPNP_LOCATION,
    DOMAIN,
    DUCKDNS_ACCOUNT_URL,
    FIELD_DOMAIN,
    LOGGER,
    SECTION_TESTING,
)
from .helpers import duckdns_client, flatten_sections
from .options_flow import OptionsFlowHandler
from .protocol.duckdns import (
    DEFAULT_UPDATE_URL,
    DuckDnsAuthError,
    DuckDnsError,
    InvalidTokenError,
    normalize_token,
    parse_domains,
)
from .protocol.names import InvalidDomainError
from .protocol.schedule import RenewalReason
from .settings_change import async_replacement

_TOKEN_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_URL_SELECTOR = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))


#: Placeholders the DuckDNS errors use; the form always sends all of them.
_NO_DETAIL: dict[str, str] = {"name": "", "duckdns_url": "", "error": ""}


def parse_duckdns_input(
    user_input: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """Check the names, the token and the URL without the network.

    Returns the entry data, the form errors and the errors' placeholders.
    """
    errors: dict[str, str] = {}
    placeholders = dict(_NO_DETAIL)
    domains: list[str] = []
    try:
        domains = parse_domains(user_input[FIELD_DOMAIN])
    except InvalidDomainError as err:
        errors[FIELD_DOMAIN] = f"invalid_domain_{err.reason}"
        placeholders["name"] = err.name
    token = ""
    try:
        token = normalize_token(user_input[CONF_TOKEN])
    except InvalidTokenError:
        errors[CONF_TOKEN] = "invalid_token_format"
    url = (user_input.get(CONF_DUCKDNS_URL) or DEFAULT_UPDATE_URL).strip()
    if not url.startswith(("https://", "http://")):
        # The field sits in a section, where the frontend shows no field errors.
        errors["base"] = "invalid_url"
    data: dict[str, Any] = {CONF_DOMAINS: domains, CONF_TOKEN: token}
    if url != DEFAULT_UPDATE_URL:
        data[CONF_DUCKDNS_URL] = url
    if location := (user_input.get(CONF_UPNP_LOCATION) or "").strip():
        if not location.startswith(("https://", "http://")):
            errors["base"] = "invalid_upnp_location"
        data[CONF_UPNP_LOCATION] = location
    return data, errors, placeholders


async def async_check_duckdns(
    hass: HomeAssistant, data: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """Ask DuckDNS whether the names and the token work; errors and placeholders."""
    placeholders = {
        **_NO_DETAIL,
        "duckdns_url": data.get(CONF_DUCKDNS_URL) or DEFAULT_UPDATE_URL,
    }
    try:
        await duckdns_client(hass, data).update(data[CONF_DOMAINS])
    except DuckDnsAuthError:
        return {"base": "invalid_auth"}, placeholders
    except DuckDnsError as err:
        LOGGER.debug("DuckDNS check failed: %s", err)
        placeholders["error"] = str(err)
        return {"base": "cannot_connect"}, placeholders
    return {}, placeholders


async def validate_duckdns(
    hass: HomeAssistant, user_input: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """Format checks, then DuckDNS itself; data, errors and placeholders."""
    data, errors, placeholders = parse_duckdns_input(user_input)
    if errors:
        return data, errors, placeholders
    errors, placeholders = await async_check_duckdns(hass, data)
    return data, errors, placeholders


def _duckdns_schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(FIELD_DOMAIN): TextSelector(
                TextSelectorConfig(type=TextSelectorType.TEXT)
            ),
            vol.Required(CONF_TOKEN): _TOKEN_SELECTOR,
            # No default on the section: the frontend would take the default
            # ({}) instead of the suggested values inside it.
            vol.Optional(SECTION_TESTING): section(
                vol.Schema(
                    {
                        vol.Optional(
                            CONF_DUCKDNS_URL, default=DEFAULT_UPDATE_URL
                        ): _URL_SELECTOR,
                        vol.Optional(CONF_UPNP_LOCATION): _URL_SELECTOR,
                    }
                ),
                {"collapsed": True},
            ),
        }
    )


class SecureRemoteAccessConfigFlow(CertificateSteps, ConfigFlow, domain=DOMAIN):
    """Connect a DuckDNS account."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing entered."""
        self._data: dict[str, Any] = {}
        self._certificate: dict[str, Any] = {}
        self._terms_url = ""

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlowHandler:
        """Options: DNS updating and, later, certificates and checks."""
        return OptionsFlowHandler()

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the DuckDNS names and the account token."""
        errors: dict[str, str] = {}
        placeholders = dict(_NO_DETAIL)
        if user_input is not None:
            data, errors, placeholders = parse_duckdns_input(
                flatten_sections(user_input)
            )
            if not errors:
                # Before anything is sent: the names may be configured already.
                await self.async_set_unique_id(",".join(data[CONF_DOMAINS]))
                self._abort_if_unique_id_configured()
                errors, placeholders = await async_check_duckdns(self.hass, data)
            if not errors:
                self._data = data
                return await self.async_step_certificates()
        schema = _duckdns_schema()
        if user_input is not None:
            # Everything entered stays, the token and the testing section too.
            schema = self.add_suggested_values_to_schema(schema, user_input)
        return self.async_show_form(
            step_id="user",
            data_schema=schema,
            errors=errors,
            description_placeholders={"token_url": DUCKDNS_ACCOUNT_URL, **placeholders},
        )

    async def async_step_certificates(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer a certificate for the names, or DuckDNS updating only."""
        return self.async_show_menu(
            step_id="certificates",
            menu_options=["certificate", "skip_certificate"],
            description_placeholders={"names": ", ".join(self._data[CONF_DOMAINS])},
        )

    async def async_step_skip_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """DuckDNS updating only."""
        return self.async_create_entry(
            title=self._data[CONF_DOMAINS][0], data=self._data
        )

    def _certificate_domains(self) -> list[str]:
        domains: list[str] = self._data[CONF_DOMAINS]
        return domains

    async def _async_certificate_done(
        self, options: dict[str, Any]
    ) -> ConfigFlowResult:
        return self.async_create_entry(
            title=self._data[CONF_DOMAINS][0], data=self._data, options=options
        )

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """DuckDNS rejected the token: ask for a new one."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Check and store a new token for the same names."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        placeholders = dict(_NO_DETAIL)
        if user_input is not None:
            data, errors, placeholders = await validate_duckdns(
                self.hass,
                {
                    **entry.data,
                    FIELD_DOMAIN: ",".join(entry.data[CONF_DOMAINS]),
                    CONF_TOKEN: user_input[CONF_TOKEN],
                },
            )
            if not errors:
                return self.async_update_reload_and_abort(
                    entry, data_updates={CONF_TOKEN: data[CONF_TOKEN]}
                )
        schema = vol.Schema({vol.Required(CONF_TOKEN): _TOKEN_SELECTOR})
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
            description_placeholders={
                "names": ", ".join(entry.data[CONF_DOMAINS]),
                "token_url": DUCKDNS_ACCOUNT_URL,
                **placeholders,
            },
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the names or the token of an entry."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        placeholders = dict(_NO_DETAIL)
        if user_input is not None:
            data, errors, placeholders = parse_duckdns_input(
                {**entry.data, **user_input}
            )
            if not errors and any(
                other.unique_id == ",".join(data[CONF_DOMAINS])
                for other in self._async_current_entries(include_ignore=False)
                if other.entry_id != entry.entry_id
            ):
                return self.async_abort(reason="already_configured")
            if not errors:
                errors, placeholders = await async_check_duckdns(self.hass, data)
            if not errors:
                unique_id = ",".join(data[CONF_DOMAINS])
                settings = CertificateSettings.from_options(
                    data[CONF_DOMAINS], entry.options
                )
                replacement = settings and await async_replacement(
                    self.hass, entry, settings
                )
                # Its message speaks of names: another misfit is not its to tell.
                replaced = bool(
                    replacement and RenewalReason.NAMES_CHANGED in replacement.reasons
                )
                return self.async_update_reload_and_abort(
                    entry,
                    unique_id=unique_id,
                    title=data[CONF_DOMAINS][0],
                    data_updates=data,
                    # Otherwise Home Assistant's own "reconfigure_successful".
                    reason="reconfigure_renewal" if replaced else UNDEFINED,
                )
        schema = self.add_suggested_values_to_schema(
            vol.Schema(
                {
                    vol.Required(FIELD_DOMAIN): TextSelector(),
                    vol.Required(CONF_TOKEN): _TOKEN_SELECTOR,
                }
            ),
            user_input or {FIELD_DOMAIN: ", ".join(entry.data[CONF_DOMAINS])},
        )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=schema,
            errors=errors,
            description_placeholders=placeholders,
        )
