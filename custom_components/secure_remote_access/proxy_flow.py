"""The options step for a proxy add-on in front: restart it after every renewal.

Reached from the proxy warning of "Serve the certificate from Home
Assistant" (https_flow.py), in the entry's options flow only (administrators).
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.config_entries import ConfigFlowResult, OptionsFlow
import probatio as vol

from .const import CONF_PROXY_ADDON
from .https_flow import STEP_SERVE
from .https_store import settings_of
from .proxy import Proxy, ProxyReport, async_proxies_in_front, reads_managed

STEP_PROXY_CERTIFICATE: Final = "proxy_certificate"
FIELD_RESTART: Final = "restart_proxy"


class ProxySteps(OptionsFlow):
    """Keep the proxy's certificate fresh: the restart option of one add-on."""

    _proxy_report: ProxyReport | None = None

    def _proxy_menu_options(self, report: ProxyReport) -> list[str]:
        """The proxy warning offers this step first when an add-on can be restarted."""
        if any(proxy.restartable for proxy in report.proxies):
            return [STEP_PROXY_CERTIFICATE, STEP_SERVE]
        return [STEP_SERVE]

    async def _async_restartable(self) -> Proxy | None:
        report = self._proxy_report or await async_proxies_in_front(self.hass)
        self._proxy_report = report
        return next((proxy for proxy in report.proxies if proxy.restartable), None)

    async def async_step_proxy_certificate(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Name the files the add-on reads; opt in to restarting it after renewals."""
        proxy = await self._async_restartable()
        settings = settings_of(self.config_entry)
        if proxy is None or proxy.slug is None or settings is None:
            return self.async_abort(reason="proxy_gone")
        options = dict(self.config_entry.options)
        if user_input is not None:
            if user_input.get(FIELD_RESTART):
                options[CONF_PROXY_ADDON] = proxy.slug
            else:
                options.pop(CONF_PROXY_ADDON, None)
            return self.async_create_entry(data=options)
        errors = {}
        if not await self.hass.async_add_executor_job(
            reads_managed, proxy, settings.certificate_path, settings.private_key_path
        ):
            errors["base"] = "proxy_reads_other_files"
        chosen = options.get(CONF_PROXY_ADDON) == proxy.slug
        return self.async_show_form(
            step_id=STEP_PROXY_CERTIFICATE,
            data_schema=vol.Schema(
                {vol.Required(FIELD_RESTART, default=chosen or not errors): bool}
            ),
            errors=errors,
            description_placeholders={
                "name": proxy.name,
                "addon_certificate": proxy.certificate or "-",
                "addon_key": proxy.key or "-",
                "certificate": str(settings.certificate_path),
                "key": str(settings.private_key_path),
            },
        )
