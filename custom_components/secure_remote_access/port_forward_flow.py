"""Flow steps that forward HTTPS from the internet on the router, and undo it.

"Forward HTTPS from the internet" is offered only when it is safe: Home
Assistant or its proxy serves the managed certificate, that certificate is
valid for the DuckDNS names, login attempts are banned and the security
checklist has no critical finding; otherwise the step says which is
missing. The screen says what is exposed and how to undo it; the user
consents and may pick another external port. Every refusal of the router
is a translated error, nothing typed is lost.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from homeassistant.components.repairs import (
    ConfirmRepairFlow,
    RepairsFlow,
    RepairsFlowResult,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowHandler, FlowResult
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
)
from homeassistant.helpers.translation import async_get_translations
import probatio as vol

from .checklist.models import Severity
from .checklist.runner import DATA_CHECKLIST
from .const import CONF_DOMAINS, DOMAIN
from .models import SecureRemoteAccessConfigEntry
from .port_forward_state import Forward
from .port_forwarding import async_remove_forward_found
from .protocol.port_forward import ForwardError, Refusal
from .protocol.remote_access import HTTPS_PORT, RemoteAccessState, UnknownReason, judge
from .protocol.upnp import GatewayReason
from .proxy import CertificateServer, async_who_serves_managed
from .status import CertificateKind, Problem

STEP_FORWARD: Final = "forward_https"
STEP_UNFORWARD: Final = "forward_https_off"
FIELD_PORT: Final = "external_port"
FIELD_CONSENT: Final = "consent"
LOGIN_BAN_CHECK: Final = "login_ban_disabled"
HOLDS: Final = "✔"
MISSING: Final = "✘"
#: What a certificate may have and still be valid.
_STILL_VALID: Final = frozenset({Problem.EXPIRING})
#: The router's refusal -> (field, error key); the field None is the form's base.
_ERRORS: Final[dict[Refusal, tuple[str, str]]] = {
    Refusal.PORT_TAKEN: (FIELD_PORT, "forward_port_taken"),
    Refusal.NOT_AUTHORIZED: (FIELD_PORT, "forward_not_authorized"),
    Refusal.SAME_PORT_REQUIRED: (FIELD_PORT, "forward_same_port_required"),
    Refusal.EXTERNAL_PORT_WILDCARD_ONLY: (FIELD_PORT, "forward_refused"),
    Refusal.ONLY_PERMANENT_LEASES: ("base", "forward_permanent_only"),
    Refusal.ACTION_FAILED: ("base", "forward_action_failed"),
    Refusal.NOT_SUPPORTED: ("base", "forward_not_supported"),
    Refusal.NOT_CONFIRMED: ("base", "forward_not_confirmed"),
    Refusal.UNREACHABLE: ("base", "forward_router_unreachable"),
    Refusal.TIMEOUT: ("base", "forward_router_unreachable"),
    Refusal.INVALID_REPLY: ("base", "forward_router_unreachable"),
}


#: The router's refusal -> the translated words put into an abort's {reason}.
_REFUSAL_WORDS: Final[dict[Refusal, str]] = {
    Refusal.UNREACHABLE: "unreachable",
    Refusal.TIMEOUT: "unreachable",
    Refusal.INVALID_REPLY: "unreachable",
    Refusal.NOT_AUTHORIZED: "not_authorized",
    Refusal.NOT_OURS: "not_ours",
    Refusal.NOT_SUPPORTED: "not_supported",
    Refusal.NOT_CONFIRMED: "not_confirmed",
    Refusal.FIREWALL_DISABLED: "firewall_disabled",
    Refusal.INBOUND_PINHOLE_NOT_ALLOWED: "pinholes_not_allowed",
    Refusal.NO_PINHOLE_SERVICE: "no_pinhole_service",
}


def refusal_error(err: ForwardError) -> tuple[str, str]:
    """The form field and translated error key of a router's refusal."""
    return _ERRORS.get(err.reason, ("base", "forward_refused"))


async def async_refusal_words(hass: HomeAssistant, reason: Refusal) -> str:
    """Why the router did not change a forward, in the user's language."""
    words = _REFUSAL_WORDS.get(reason, "refused")
    key = f"component.{DOMAIN}.exceptions.forward_refusal_{words}.message"
    texts = await async_get_translations(
        hass, hass.config.language, "exceptions", {DOMAIN}
    )
    return texts.get(key, words)


async def async_forward_conditions(
    hass: HomeAssistant, entry: SecureRemoteAccessConfigEntry
) -> tuple[CertificateServer | None, dict[str, str]]:
    """Who serves the managed certificate (None unless every safety condition
    holds), and each condition (✔/✘)."""
    server = await async_who_serves_managed(hass, entry)
    status = entry.runtime_data.certificates.status(CertificateKind.MANAGED.value)
    valid = (
        status is not None
        and status.info is not None
        and set(status.problems) <= _STILL_VALID
    )
    banned = critical = False
    critical_ids: list[str] = []
    if (runner := hass.data.get(DATA_CHECKLIST)) is not None:
        result = runner.result or await runner.async_run()
        banned = LOGIN_BAN_CHECK in result.passed
        critical_ids = [
            f.check_id for f in result.findings if f.severity is Severity.CRITICAL
        ]
        critical = not critical_ids
    served = server is not None and bool(server.port)
    holding = (served, valid, banned, critical)
    return server if all(holding) else None, {
        "served": HOLDS if served else MISSING,
        "certificate": HOLDS if valid else MISSING,
        "login_ban": HOLDS if banned else MISSING,
        "no_critical": HOLDS if critical else MISSING,
        "critical": ", ".join(critical_ids) or "-",
        "names": ", ".join(entry.data[CONF_DOMAINS]),
    }


def loaded_entry(
    hass: HomeAssistant, entry_id: str
) -> SecureRemoteAccessConfigEntry | None:
    """The entry while it is loaded (a fix flow may outlive it)."""
    entry: SecureRemoteAccessConfigEntry | None = hass.config_entries.async_get_entry(
        entry_id
    )
    if entry is None or entry.state is not ConfigEntryState.LOADED:
        return None
    return entry


def forward_menu_option(entry: SecureRemoteAccessConfigEntry) -> str | None:
    """The entry's menu step: forward (with a managed certificate) or stop forwarding."""
    if entry.state is not ConfigEntryState.LOADED:
        return None
    if entry.runtime_data.port_forward.state.wanted is not None:
        return STEP_UNFORWARD
    return STEP_FORWARD if entry.runtime_data.managed is not None else None


class PortForwardSteps[ResultT: FlowResult[Any, str]](FlowHandler[Any, ResultT, str]):
    """The forward_https and forward_https_off steps (options flow).

    The keeper's Store is what is on the router: the steps end without
    saving options (the entry does not reload).
    """

    async def _async_forward_entry(self) -> SecureRemoteAccessConfigEntry | None:
        """The entry whose HTTPS is forwarded (None: not loaded any more)."""
        raise NotImplementedError

    async def async_step_forward_https(
        self, user_input: dict[str, Any] | None = None
    ) -> ResultT:
        """Say what is exposed and how to undo it; forward once the user consents."""
        if (entry := await self._async_forward_entry()) is None:
            return self.async_abort(reason="forward_entry_gone")
        server, conditions = await async_forward_conditions(self.hass, entry)
        if server is None:
            return self.async_abort(
                reason="forward_not_safe", description_placeholders=conditions
            )
        result = entry.runtime_data.remote_access.data
        gateway = result.facts.gateway if result else None
        # The IPv4 side as the check judges it without our IPv6 pinhole
        # (which makes the home reachable whatever the NAT in front of IPv4).
        ipv4 = (
            judge(replace(result.facts, ipv6_pinhole_port=None), result.checked_at)
            if result is not None
            else None
        )
        if ipv4 is not None and (
            ipv4.state is RemoteAccessState.CARRIER_GRADE_NAT
            or ipv4.reason == UnknownReason.WAN_ADDRESS_HIDDEN
        ):
            return self.async_abort(reason="forward_behind_cgnat")
        if ipv4 is not None and ipv4.reason == GatewayReason.REFUSED:
            return self.async_abort(reason="forward_router_hides_address")
        if gateway is None or gateway.local_address is None:
            return self.async_abort(reason="forward_no_router")
        errors: dict[str, str] = {}
        detail = ""
        port = HTTPS_PORT
        if user_input is not None:
            port = int(user_input.get(FIELD_PORT) or 0)
            if not user_input.get(FIELD_CONSENT):
                errors[FIELD_CONSENT] = "forward_consent_required"
            if not 0 < port < 65536:
                errors[FIELD_PORT] = "forward_invalid_port"
            if not errors:
                try:
                    await entry.runtime_data.port_forward.async_forward(
                        gateway.location, gateway.local_address, server.port or 0, port
                    )
                except ForwardError as err:
                    field, key = refusal_error(err)
                    errors[field] = key
                    # The router's own answer (who holds the port), never
                    # a parser's message about a reply that made no sense.
                    detail = f"\n\n{err.detail}" if err.code is not None else ""
                else:
                    return self.async_abort(
                        reason="forward_added",
                        description_placeholders={
                            "port": str(port),
                            "url": f"https://{entry.data[CONF_DOMAINS][0]}"
                            + ("" if port == HTTPS_PORT else f":{port}"),
                        },
                    )
        schema = vol.Schema(
            {
                vol.Required(FIELD_PORT, default=port): NumberSelector(
                    NumberSelectorConfig(step=1, mode=NumberSelectorMode.BOX)
                ),
                vol.Required(FIELD_CONSENT, default=False): BooleanSelector(),
            }
        )
        return self.async_show_form(
            step_id=STEP_FORWARD,
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders={
                "router": gateway.router_name or gateway.location,
                "wan_address": gateway.wan_address or "-",
                "internal": f"{gateway.local_address}:{server.port}",
                "server": server.name,
                "names": conditions["names"],
                "description": entry.runtime_data.port_forward.description,
                "detail": detail,
            },
        )

    async def async_step_forward_https_off(
        self, user_input: dict[str, Any] | None = None
    ) -> ResultT:
        """Remove our forward from the router; say so when the router refuses."""
        if (entry := await self._async_forward_entry()) is None:
            return self.async_abort(reason="forward_entry_gone")
        keeper = entry.runtime_data.port_forward
        wanted = keeper.state.wanted
        placeholders = {
            "port": str(wanted.external_port) if wanted else "-",
            "internal": f"{wanted.internal_client}:{wanted.internal_port}"
            if wanted
            else "-",
        }
        if user_input is None:
            return self.async_show_form(
                step_id=STEP_UNFORWARD, description_placeholders=placeholders
            )
        if (refusal := await keeper.async_unforward()) is not None:
            # Off all the same: the keeper asks the router again until it is gone.
            return self.async_abort(
                reason="forward_removal_pending",
                description_placeholders={
                    **placeholders,
                    "reason": await async_refusal_words(self.hass, refusal.reason),
                },
            )
        return self.async_abort(
            reason="forward_removed", description_placeholders=placeholders
        )


class ForwardHttpsRepairFlow(PortForwardSteps[RepairsFlowResult], RepairsFlow):
    """no_port_forward: Home Assistant serves HTTPS, nothing forwards to it."""

    def __init__(self, entry_id: str) -> None:
        """Remember whose check raised the issue."""
        self.entry_id = entry_id

    async def _async_forward_entry(self) -> SecureRemoteAccessConfigEntry | None:
        return loaded_entry(self.hass, self.entry_id)

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """The forward step explains what is exposed before anything changes."""
        return await self.async_step_forward_https()


class PortForwardLeftRepairFlow(ConfirmRepairFlow):
    """A removed entry's forward: remove it now (or confirm it was removed by hand)."""

    def __init__(self, data: dict[str, str | int | float | None] | None) -> None:
        """Remember the forward (the keeper's stored form)."""
        self.forward = Forward.from_dict(data)

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Show the forward; remove it when the user submits."""
        if user_input is None:
            return await super().async_step_confirm()
        if self.forward is None:
            return self.async_create_entry(data={})
        try:
            await async_remove_forward_found(self.hass, self.forward)
        except ForwardError as err:
            return self.async_abort(
                reason="forward_left_refused",
                description_placeholders={
                    "reason": await async_refusal_words(self.hass, err.reason),
                    "external_port": str(self.forward.external_port),
                },
            )
        return self.async_create_entry(data={})
