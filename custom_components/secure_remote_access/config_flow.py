"""Config flow for Secure Remote Access."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from .certificate_flow import CERTIFICATE_KEYS, CertificateSteps, async_defaults
from .checklist.checks import CHECK_IDS
from .const import (
    CONF_ACME_DIRECTORY,
    CONF_DISABLED_CHECKS,
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_ENDPOINTS,
    CONF_EXPIRY_WARNING_DAYS,
    CONF_IPV6_ADDRESS,
    CONF_IPV6_MODE,
    CONF_UPDATE_INTERVAL,
    DEFAULT_EXPIRY_WARNING_DAYS,
    DEFAULT_UPDATE_INTERVAL,
    DOMAIN,
    DUCKDNS_ACCOUNT_URL,
    FIELD_DOMAIN,
    LOGGER,
    MAX_ENDPOINTS,
    MAX_EXPIRY_WARNING_DAYS,
    MAX_UPDATE_INTERVAL,
    MIN_EXPIRY_WARNING_DAYS,
    MIN_UPDATE_INTERVAL,
    SECTION_TESTING,
    Ipv6Mode,
)
from .helpers import duckdns_client, flatten_sections
from .https import async_serves_managed
from .https_flow import STEP_SERVE, STEP_STOP, HttpsSteps
from .models import SecureRemoteAccessConfigEntry
from .monitor import check_endpoint_text, endpoints_from_options
from .protocol.duckdns import (
    DEFAULT_UPDATE_URL,
    DuckDnsAuthError,
    DuckDnsError,
    InvalidDomainError,
    InvalidTokenError,
    normalize_token,
    parse_domains,
)
from .protocol.ipv6 import is_public_ipv6

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
                        ): _URL_SELECTOR
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
                return self.async_update_reload_and_abort(
                    entry,
                    unique_id=unique_id,
                    title=data[CONF_DOMAINS][0],
                    data_updates=data,
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


class OptionsFlowHandler(
    CertificateSteps, HttpsSteps[ConfigFlowResult], OptionsFlowWithReload
):
    """Change how the entry works; the entry reloads with the new options."""

    def __init__(self) -> None:
        """Start with nothing entered."""
        self._certificate: dict[str, Any] = {}
        self._terms_url = ""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick what to change."""
        menu = ["dns", "certificate", "endpoints", "checks"]
        if self.config_entry.options.get(CONF_ACME_DIRECTORY):
            menu.append("certificate_off")
        # Serving HTTPS (issue 18): the steps are in https_flow.py.
        serving = await async_serves_managed(self.hass, self.config_entry)
        if serving is not None:
            menu.append(STEP_STOP if serving else STEP_SERVE)
        return self.async_show_menu(step_id="init", menu_options=menu)

    async def _async_https_entry(self) -> SecureRemoteAccessConfigEntry | None:
        return self.config_entry

    def _https_done(self) -> ConfigFlowResult:
        return self.async_abort(reason="https_restarting")

    def _certificate_domains(self) -> list[str]:
        domains: list[str] = self.config_entry.data[CONF_DOMAINS]
        return domains

    async def _async_certificate_values(self) -> dict[str, Any]:
        return {**await async_defaults(self.hass), **self.config_entry.options}

    async def _async_certificate_done(
        self, options: dict[str, Any]
    ) -> ConfigFlowResult:
        return self.async_create_entry(data={**self._other_options(), **options})

    def _other_options(self) -> dict[str, Any]:
        """The entry's options that are not about certificates."""
        return {
            k: v
            for k, v in self.config_entry.options.items()
            if k not in CERTIFICATE_KEYS
        }

    async def async_step_certificate_off(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Stop managing a certificate; the files on disk stay where they are."""
        if user_input is not None:
            return self.async_create_entry(data=self._other_options())
        return self.async_show_form(step_id="certificate_off")

    async def async_step_checks(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Turn individual security checks off."""
        if user_input is not None:
            disabled = [
                check_id
                for check_id in CHECK_IDS
                if check_id in user_input.get(CONF_DISABLED_CHECKS, [])
            ]
            return self.async_create_entry(
                data={**self.config_entry.options, CONF_DISABLED_CHECKS: disabled}
            )
        schema = vol.Schema(
            {
                vol.Optional(CONF_DISABLED_CHECKS): SelectSelector(
                    SelectSelectorConfig(
                        options=list(CHECK_IDS),
                        multiple=True,
                        mode=SelectSelectorMode.LIST,
                        translation_key="check_ids",
                    )
                )
            }
        )
        return self.async_show_form(
            step_id="checks",
            data_schema=self.add_suggested_values_to_schema(
                schema,
                {
                    CONF_DISABLED_CHECKS: self.config_entry.options.get(
                        CONF_DISABLED_CHECKS, []
                    )
                },
            ),
        )

    async def async_step_dns(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Update interval and IPv6."""
        errors: dict[str, str] = {}
        if user_input is not None:
            options = {**self.config_entry.options, **user_input}
            interval = user_input.get(CONF_UPDATE_INTERVAL)
            if (
                not isinstance(interval, int | float)
                or interval != int(interval)
                or not MIN_UPDATE_INTERVAL <= interval <= MAX_UPDATE_INTERVAL
            ):
                errors[CONF_UPDATE_INTERVAL] = "invalid_update_interval"
            else:
                options[CONF_UPDATE_INTERVAL] = int(interval)
            address = (user_input.get(CONF_IPV6_ADDRESS) or "").strip()
            if user_input[CONF_IPV6_MODE] == Ipv6Mode.FIXED:
                if not is_public_ipv6(address):
                    errors[CONF_IPV6_ADDRESS] = "invalid_ipv6"
                options[CONF_IPV6_ADDRESS] = address
            else:
                options.pop(CONF_IPV6_ADDRESS, None)
            if not errors:
                return self.async_create_entry(data=options)

        schema = vol.Schema(
            {
                # No min/max in the selector: its error ("Value 0.0 is too
                # small") would not be translated; the step checks the range.
                vol.Required(CONF_UPDATE_INTERVAL): NumberSelector(
                    NumberSelectorConfig(
                        step=1, mode=NumberSelectorMode.BOX, unit_of_measurement="min"
                    )
                ),
                vol.Required(CONF_IPV6_MODE): SelectSelector(
                    SelectSelectorConfig(
                        options=[mode.value for mode in Ipv6Mode],
                        mode=SelectSelectorMode.LIST,
                        translation_key=CONF_IPV6_MODE,
                    )
                ),
                vol.Optional(CONF_IPV6_ADDRESS): TextSelector(),
            }
        )
        current = {
            CONF_UPDATE_INTERVAL: DEFAULT_UPDATE_INTERVAL,
            CONF_IPV6_MODE: Ipv6Mode.OFF.value,
            **self.config_entry.options,
            **(user_input or {}),
        }
        return self.async_show_form(
            step_id="dns",
            data_schema=self.add_suggested_values_to_schema(schema, current),
            errors=errors,
        )

    async def async_step_endpoints(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Certificate monitoring: remote endpoints and the warning threshold."""
        errors: dict[str, str] = {}
        detail = ""
        if user_input is not None:
            check = await self.hass.async_add_executor_job(
                check_endpoint_text, self.hass, user_input.get(CONF_ENDPOINTS) or ""
            )
            days = user_input.get(CONF_EXPIRY_WARNING_DAYS)
            if (
                not isinstance(days, int | float)
                or days != int(days)
                or not MIN_EXPIRY_WARNING_DAYS <= days <= MAX_EXPIRY_WARNING_DAYS
            ):
                errors[CONF_EXPIRY_WARNING_DAYS] = "invalid_warning_days"
            if check.error is not None:
                errors[CONF_ENDPOINTS] = check.error
                detail = check.detail
            elif not errors:
                return self.async_create_entry(
                    data={
                        **self.config_entry.options,
                        CONF_ENDPOINTS: [
                            endpoint.as_option() for endpoint in check.endpoints
                        ],
                        CONF_EXPIRY_WARNING_DAYS: int(
                            user_input[CONF_EXPIRY_WARNING_DAYS]
                        ),
                    }
                )
        schema = vol.Schema(
            {
                vol.Optional(CONF_ENDPOINTS): TextSelector(
                    TextSelectorConfig(multiline=True)
                ),
                vol.Required(CONF_EXPIRY_WARNING_DAYS): NumberSelector(
                    NumberSelectorConfig(
                        step=1, mode=NumberSelectorMode.BOX, unit_of_measurement="days"
                    )
                ),
            }
        )
        current = {
            CONF_ENDPOINTS: "\n".join(
                endpoint.to_line()
                for endpoint in endpoints_from_options(self.config_entry.options)
            ),
            CONF_EXPIRY_WARNING_DAYS: self.config_entry.options.get(
                CONF_EXPIRY_WARNING_DAYS, DEFAULT_EXPIRY_WARNING_DAYS
            ),
            **(user_input or {}),
        }
        return self.async_show_form(
            step_id="endpoints",
            data_schema=self.add_suggested_values_to_schema(schema, current),
            errors=errors,
            description_placeholders={
                "max_endpoints": str(MAX_ENDPOINTS),
                "detail": detail,
            },
        )
