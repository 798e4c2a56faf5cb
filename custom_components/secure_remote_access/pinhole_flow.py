"""Flow steps that open HTTPS to the internet over IPv6 (a pinhole), and close it.

The way out of carrier-grade NAT when the provider gives IPv6: offered when
DuckDNS holds an IPv6 address, opened only when it is this host's, the
router offers pinholes and the same safety conditions as a port forward
hold (port_forward_flow.py). IPv6 has no address translation: the pinhole
opens the port that serves the managed certificate on this host's own
address, and the screen says so.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.data_entry_flow import FlowHandler, FlowResult
from homeassistant.helpers.selector import BooleanSelector
import probatio as vol

from .const import CONF_DOMAINS
from .models import SecureRemoteAccessConfigEntry
from .pinhole_keeping import kept_by_another
from .pinhole_state import Pinhole
from .port_forward_flow import (
    FIELD_CONSENT,
    async_forward_conditions,
    async_refusal_words,
)
from .protocol.ipv6 import is_own_address
from .protocol.port_forward import ForwardError, Refusal
from .protocol.remote_access import HTTPS_PORT

STEP_PINHOLE: Final = "pinhole_https"
STEP_UNPINHOLE: Final = "pinhole_https_off"
#: The router's refusal -> the form's error key.
_ERRORS: Final[dict[Refusal, str]] = {
    Refusal.NOT_AUTHORIZED: "pinhole_not_authorized",
    Refusal.NO_PINHOLE_SERVICE: "pinhole_no_service",
    Refusal.FIREWALL_DISABLED: "pinhole_firewall_disabled",
    Refusal.INBOUND_PINHOLE_NOT_ALLOWED: "pinhole_not_allowed",
    Refusal.PINHOLE_SPACE_EXHAUSTED: "pinhole_space_exhausted",
    Refusal.NOT_CONFIRMED: "pinhole_not_confirmed",
    Refusal.UNREACHABLE: "pinhole_router_unreachable",
    Refusal.TIMEOUT: "pinhole_router_unreachable",
    Refusal.INVALID_REPLY: "pinhole_router_unreachable",
}


def pinhole_menu_option(entry: SecureRemoteAccessConfigEntry) -> str | None:
    """The entry's menu step: open (DuckDNS holds IPv6) or close the pinhole."""
    if entry.state is not ConfigEntryState.LOADED:
        return None
    runtime = entry.runtime_data
    if runtime.pinhole.state.wanted is not None:
        return STEP_UNPINHOLE
    dns = runtime.dns.data
    if runtime.managed is None or dns is None or dns.ipv6 is None:
        return None
    return STEP_PINHOLE


def _url(entry: SecureRemoteAccessConfigEntry, port: int) -> str:
    name = entry.data[CONF_DOMAINS][0]
    return f"https://{name}" + ("" if port == HTTPS_PORT else f":{port}")


class PinholeSteps[ResultT: FlowResult[Any, str]](FlowHandler[Any, ResultT, str]):
    """The pinhole_https and pinhole_https_off steps (options flow).

    The keeper's Store is what is on the router: the steps end without
    saving options (the entry does not reload).
    """

    config_entry: SecureRemoteAccessConfigEntry

    async def async_step_pinhole_https(
        self, user_input: dict[str, Any] | None = None
    ) -> ResultT:
        """Say what is opened and how to undo it; open once the user consents."""
        entry = self.config_entry
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="pinhole_entry_gone")
        server, conditions = await async_forward_conditions(self.hass, entry)
        if server is None:
            return self.async_abort(
                reason="pinhole_not_safe", description_placeholders=conditions
            )
        dns = entry.runtime_data.dns.data
        address = dns.ipv6 if dns is not None else None
        if address is None:
            return self.async_abort(reason="pinhole_no_ipv6")
        if not is_own_address(address):
            return self.async_abort(
                reason="pinhole_not_this_host",
                description_placeholders={"address": address},
            )
        result = entry.runtime_data.remote_access.data
        gateway = result.facts.gateway if result is not None else None
        if gateway is None:
            return self.async_abort(reason="pinhole_no_router")
        router = gateway.router_name or gateway.location
        port = server.port or 0
        manual = {"router": router, "address": address, "port": str(port)}
        if not gateway.pinholes:
            return self.async_abort(
                reason="pinhole_no_service", description_placeholders=manual
            )
        if gateway.ipv6_location is None:
            return self.async_abort(
                reason="pinhole_router_not_found", description_placeholders=manual
            )
        errors: dict[str, str] = {}
        if user_input is not None:
            if not user_input.get(FIELD_CONSENT):
                errors[FIELD_CONSENT] = "forward_consent_required"
            else:
                try:
                    await entry.runtime_data.pinhole.async_open(
                        Pinhole(gateway.ipv6_location, address, port)
                    )
                except ForwardError as err:
                    errors["base"] = _ERRORS.get(err.reason, "pinhole_refused")
                else:
                    return self.async_abort(
                        reason="pinhole_added",
                        description_placeholders={
                            "port": str(port),
                            "url": _url(entry, port),
                        },
                    )
        schema = vol.Schema(
            {vol.Required(FIELD_CONSENT, default=False): BooleanSelector()}
        )
        return self.async_show_form(
            step_id=STEP_PINHOLE,
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders={
                **manual,
                "server": server.name,
                "names": conditions["names"],
                "url": _url(entry, port),
            },
        )

    async def async_step_pinhole_https_off(
        self, user_input: dict[str, Any] | None = None
    ) -> ResultT:
        """Close our pinhole; say so when the router refuses."""
        entry = self.config_entry
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="pinhole_entry_gone")
        keeper = entry.runtime_data.pinhole
        wanted = keeper.state.wanted
        placeholders = {
            "address": wanted.internal_client if wanted else "-",
            "port": str(wanted.port) if wanted else "-",
        }
        if user_input is None:
            return self.async_show_form(
                step_id=STEP_UNPINHOLE, description_placeholders=placeholders
            )
        other = (
            kept_by_another(self.hass, entry.entry_id, wanted)
            if wanted is not None
            else None
        )
        if (refusal := await keeper.async_close()) is not None:
            # Off all the same: asked again until the router's lease ends it.
            return self.async_abort(
                reason="pinhole_close_pending",
                description_placeholders={
                    **placeholders,
                    "reason": await async_refusal_words(self.hass, refusal.reason),
                },
            )
        if other is not None:  # not closed: the other entry's too
            return self.async_abort(
                reason="pinhole_kept_by_another",
                description_placeholders={**placeholders, "entry": other.title},
            )
        return self.async_abort(
            reason="pinhole_closed", description_placeholders=placeholders
        )
