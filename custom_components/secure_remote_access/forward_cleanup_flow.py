"""Fix flows of the forwards that should not be exposed: "Remove this forward".

Plain HTTP forwarded, SSH forwarded with passwords and port 80 forwarded to
this host: after the explanation, the flow offers to delete exactly the
mappings behind the finding (those of this host, read from the router in
the entry's latest check), through UPnP DeletePortMapping; a mapping to
another host is never touched (`PortForwarder.remove` checks the internal
client again right before deleting). The check runs again afterwards; a
router that refuses says so and the manual steps remain in the issue.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.repairs import RepairsFlow, RepairsFlowResult
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import DOMAIN, LOGGER
from .issues import issue_entry_id
from .port_forward_flow import async_refusal_words, loaded_entry
from .protocol.port_forward import ForwardError, open_forwarder
from .protocol.remote_access import Finding, port_finding_mappings
from .remote_access_issues import REMOVABLE_FINDINGS
from .router_keeping import CHANGE_TIMEOUT


def async_cleanup_fix_flow(issue_id: str) -> RepairsFlow | None:
    """The fix flow of a removable forward's issue, or None for other issues."""
    for finding in sorted(REMOVABLE_FINDINGS):
        if entry_id := issue_entry_id(issue_id, finding.value):
            return RemoveForwardRepairFlow(entry_id, finding)
    return None


class RemoveForwardRepairFlow(RepairsFlow):
    """Why it matters, then remove this host's forwards behind the finding."""

    def __init__(self, entry_id: str, finding: Finding) -> None:
        """Remember whose check found it, and which finding it is."""
        self.entry_id = entry_id
        self.finding = finding

    def _placeholders(self) -> dict[str, str]:
        issue = ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id)
        return dict(issue.translation_placeholders or {}) if issue else {}

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Why it matters; remove it, or change it on the router by hand."""
        return self.async_show_menu(
            step_id="init",
            menu_options=["remove_forward", "keep_forward"],
            description_placeholders=self._placeholders(),
        )

    async def async_step_keep_forward(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """The user changes it on the router: the issue stays until the check agrees."""
        return self.async_abort(
            reason="forward_manual", description_placeholders=self._placeholders()
        )

    async def async_step_remove_forward(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        """Delete the forwards behind the finding; check again."""
        placeholders = self._placeholders()
        entry = loaded_entry(self.hass, self.entry_id)
        result = entry.runtime_data.remote_access.data if entry else None
        gateway = result.facts.gateway if result else None
        mappings = (
            port_finding_mappings(result.facts).get(self.finding, []) if result else []
        )
        if entry is None or gateway is None or not mappings:
            return self.async_abort(
                reason="forward_gone_from_check", description_placeholders=placeholders
            )
        keeper = entry.runtime_data.port_forward
        wanted = keeper.state.wanted
        ours = [
            m
            for m in mappings
            if wanted is not None
            and (m.external_port, m.description)
            == (wanted.external_port, keeper.description)
        ]
        try:
            # Our own HTTPS forward: stop it, or the keeper adds it back.
            if ours and (refused := await keeper.async_unforward()) is not None:
                raise refused
            async with open_forwarder(
                async_get_clientsession(self.hass),
                gateway.location,
                timeout_seconds=CHANGE_TIMEOUT,
            ) as forwarder:
                # A wildcard (every port) is left to the user: the check still finds it.
                for mapping in [
                    m for m in mappings if not m.all_ports and m not in ours
                ]:
                    await forwarder.remove(
                        mapping.external_port,
                        mapping.protocol,
                        internal_client=mapping.internal_client,
                        internal_port=mapping.internal_port,
                    )
                    LOGGER.info(
                        "Removed the router's forward of external port %s to %s:%s "
                        "(%s)",
                        mapping.external_port,
                        mapping.internal_client,
                        mapping.internal_port,
                        self.finding.value,
                    )
        except ForwardError as err:
            LOGGER.debug("Removing the forwards of %s: %s", self.finding, err.detail)
            await entry.runtime_data.remote_access.async_refresh()
            return self.async_abort(
                reason="forward_remove_refused",
                description_placeholders={
                    **placeholders,
                    "reason": await async_refusal_words(self.hass, err.reason),
                },
            )
        await entry.runtime_data.remote_access.async_refresh()
        if ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id) is not None:
            return self.async_abort(
                reason="forward_still_found", description_placeholders=placeholders
            )
        return self.async_create_entry(data={})
