"""Options flow for Secure Remote Access: DNS, certificate, endpoints, checks."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigFlowResult, OptionsFlowWithReload
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
)
import probatio as vol

from .certificate_flow import CertificateSteps, allowed_directories, async_defaults
from .certificate_settings import CertificateSettings, other_options
from .checklist.checks import CHECK_IDS
from .const import (
    CONF_ACME_DIRECTORY,
    CONF_DISABLED_CHECKS,
    CONF_DOMAINS,
    CONF_ENDPOINTS,
    CONF_EXPIRY_WARNING_DAYS,
    CONF_IPV6_ADDRESS,
    CONF_IPV6_MODE,
    CONF_UPDATE_INTERVAL,
    DEFAULT_EXPIRY_WARNING_DAYS,
    DEFAULT_UPDATE_INTERVAL,
    MAX_ENDPOINTS,
    MAX_EXPIRY_WARNING_DAYS,
    MAX_UPDATE_INTERVAL,
    MIN_EXPIRY_WARNING_DAYS,
    MIN_UPDATE_INTERVAL,
    Ipv6Mode,
)
from .helpers import check_endpoint_text, endpoints_from_options
from .https_flow import HttpsSteps, async_https_menu_option
from .https_store import settings_of
from .https_trial import get_https_trial
from .https_unmanaged import async_warn_unmanaged
from .models import SecureRemoteAccessConfigEntry
from .pinhole_flow import PinholeSteps, pinhole_menu_option
from .port_forward_flow import PortForwardSteps, forward_menu_option
from .protocol.ipv6 import is_public_ipv6
from .proxy_flow import ProxySteps
from .settings_change import CertificateReplacement, async_replacement


class OptionsFlowHandler(
    CertificateSteps,
    ProxySteps,
    HttpsSteps[ConfigFlowResult],
    PortForwardSteps[ConfigFlowResult],
    PinholeSteps[ConfigFlowResult],
    OptionsFlowWithReload,
):
    """Change how the entry works; the entry reloads with the new options."""

    def __init__(self) -> None:
        """Start with nothing entered."""
        self._certificate: dict[str, Any] = {}
        self._terms_url = ""
        self._saved: dict[str, Any] = {}
        self._replacement: CertificateReplacement | None = None

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick what to change."""
        menu = ["dns", "certificate", "endpoints", "checks"]
        if self.config_entry.options.get(CONF_ACME_DIRECTORY):
            menu.append("certificate_off")
        # Serving HTTPS (issues 18, 28): the steps are in https_flow.py.
        if option := await async_https_menu_option(self.hass, self.config_entry):
            menu.append(option)
        # Port forwards on the router (issue 30): port_forward_flow.py.
        if option := forward_menu_option(self.config_entry):
            menu.append(option)
        # The same over IPv6, through a pinhole: pinhole_flow.py.
        if option := pinhole_menu_option(self.config_entry):
            menu.append(option)
        return self.async_show_menu(step_id="init", menu_options=menu)

    async def _async_forward_entry(self) -> SecureRemoteAccessConfigEntry | None:
        return self.config_entry

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
        self._saved = {**self._other_options(), **options}
        settings = CertificateSettings.parse(self._certificate_domains(), options)
        self._replacement = await async_replacement(
            self.hass, self.config_entry, settings
        )
        if self._replacement is None:
            return self.async_create_entry(data=self._saved)
        return await self.async_step_certificate_renew()

    async def async_step_certificate_renew(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Say, before saving, that the certificate on disk is replaced and why."""
        if user_input is not None:
            return self.async_create_entry(data=self._saved)
        assert self._replacement is not None
        return self.async_show_form(
            step_id=self._replacement.step_id,
            description_placeholders=self._replacement.placeholders(),
        )

    async def async_step_certificate_renew_later(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The same, while the CA's Retry-After holds the order back."""
        return await self.async_step_certificate_renew(user_input)

    def _other_options(self) -> dict[str, Any]:
        """The entry's options that are not about certificates."""
        return other_options(self.config_entry.options)

    async def async_step_certificate_off(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Stop managing a certificate; the files on disk stay where they are."""
        if user_input is not None:
            # Served files that are no longer renewed get a lasting warning.
            await async_warn_unmanaged(
                self.hass,
                settings_of(self.config_entry),
                await get_https_trial(self.hass).async_set_urls(),
            )
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
        detail = allowed = ""
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
                if check.error == "ca_bundle_not_allowed":
                    allowed = await self.hass.async_add_executor_job(
                        allowed_directories, self.hass
                    )
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
                "allowed": allowed,
            },
        )
