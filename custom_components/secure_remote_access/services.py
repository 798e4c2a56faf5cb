"""Actions of Secure Remote Access, registered once in async_setup."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.service import async_register_admin_service
import probatio as vol

from .checklist.runner import DATA_CHECKLIST
from .const import (
    ATTR_CONFIG_ENTRY_ID,
    ATTR_FORCE,
    DOMAIN,
    SERVICE_CHECK_REMOTE_ACCESS,
    SERVICE_RENEW_CERTIFICATE,
    SERVICE_RUN_SECURITY_CHECKS,
    SERVICE_UPDATE_DNS,
)
from .models import SecureRemoteAccessConfigEntry

ENTRY_SCHEMA = vol.Schema({vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string})
RENEW_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Optional(ATTR_FORCE, default=False): cv.boolean,
    }
)

NO_FIELDS_SCHEMA = vol.Schema({})


def loaded_entry(call: ServiceCall) -> SecureRemoteAccessConfigEntry:
    """The loaded config entry an action names, or a translated validation error."""
    entry_id: str = call.data[ATTR_CONFIG_ENTRY_ID]
    entry: SecureRemoteAccessConfigEntry | None = (
        call.hass.config_entries.async_get_entry(entry_id)
    )
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"title": entry.title},
        )
    return entry


async def _update_dns(call: ServiceCall) -> ServiceResponse:
    entry = loaded_entry(call)
    state = await entry.runtime_data.dns.async_update_now()
    return {"ipv4": state.ipv4, "ipv6": state.ipv6, "changed": state.changed}


async def _renew_certificate(call: ServiceCall) -> ServiceResponse:
    entry = loaded_entry(call)
    if (managed := entry.runtime_data.managed) is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="certificate_not_configured",
            translation_placeholders={"title": entry.title},
        )
    outcome = await managed.renewal.async_run(force=call.data[ATTR_FORCE])
    return outcome.as_response()


async def _run_security_checks(call: ServiceCall) -> ServiceResponse:
    """Run the checklist now; the summaries are English and never hold secrets."""
    if (runner := call.hass.data.get(DATA_CHECKLIST)) is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="no_entry_loaded"
        )
    result = await runner.async_run()
    return {
        "findings": [
            {
                "id": finding.check_id,
                "severity": finding.severity.value,
                "summary": finding.summary,
            }
            for finding in result.findings
        ],
        "passed": list(result.passed),
    }


async def _check_remote_access(call: ServiceCall) -> ServiceResponse:
    """Run the entry's remote-access check now and return its facts and result."""
    entry = loaded_entry(call)
    result = await entry.runtime_data.remote_access.async_check_now()
    return result.as_response()


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions; all of them are for administrators.

    Renewing burns the CA's rate limits, the checklist reveals the security
    findings, a DNS update talks to DuckDNS with the account's token and the
    remote-access check reveals the router's port mappings.
    """
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_UPDATE_DNS,
        _update_dns,
        schema=ENTRY_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_RENEW_CERTIFICATE,
        _renew_certificate,
        schema=RENEW_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_RUN_SECURITY_CHECKS,
        _run_security_checks,
        schema=NO_FIELDS_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_CHECK_REMOTE_ACCESS,
        _check_remote_access,
        schema=ENTRY_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
