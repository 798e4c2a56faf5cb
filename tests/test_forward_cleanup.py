"""'Remove this forward' in the fix flows of forwards that should not be exposed.

The router is the project's gateway on 127.0.0.1 (``home``); the forwards
are made through its own SOAP action, as a user's router page would.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.repairs import DOMAIN as REPAIRS
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest

from custom_components.secure_remote_access.const import DOMAIN
from tests.fakes.igd import Mapping

from .remote_home import LOCAL, Home

OTHER_HOST = "127.0.0.9"


async def _open(home: Home, finding: str) -> tuple[Any, dict[str, Any]]:
    assert home.entry is not None
    await async_setup_component(home.hass, REPAIRS, {})
    flows = home.hass.data[REPAIRS]["flow_manager"]
    issue_id = f"{finding}_{home.entry.entry_id}"
    issue = ir.async_get(home.hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.is_fixable
    menu = await flows.async_init(DOMAIN, data={"issue_id": issue_id})
    assert menu["type"] is FlowResultType.MENU
    assert menu["menu_options"] == ["remove_forward", "keep_forward"]
    return flows, dict(menu)


@pytest.mark.parametrize(
    ("external", "internal", "finding"),
    [
        (8123, 8123, "plain_http_forwarded"),
        (80, 8123, "port_80_forwarded"),
    ],
)
async def test_remove_this_forward(
    home: Home, external: int, internal: int, finding: str
) -> None:
    """Ours goes, another host's stays; the check runs again and the issue is gone."""
    await home.forward(external, internal)
    home.igd.state.mappings.append(Mapping(9000, "TCP", 8123, OTHER_HOST, "nas"))
    await home.setup()
    flows, menu = await _open(home, finding)
    assert menu["description_placeholders"]["ports"] == f"{external} → {internal}"
    done = await flows.async_configure(
        menu["flow_id"], {"next_step_id": "remove_forward"}
    )
    assert done["type"] is FlowResultType.CREATE_ENTRY
    assert [(m.external_port, m.internal_client) for m in home.igd.state.mappings] == [
        (9000, OTHER_HOST)
    ]
    assert finding not in home.issues()


async def test_a_router_that_refuses_keeps_the_manual_steps(home: Home) -> None:
    """Read-only UPnP: the flow says so, the forward and the issue stay."""
    await home.forward(8123, 8123)
    await home.setup()
    home.igd.state.mode = "read_only"
    flows, menu = await _open(home, "plain_http_forwarded")
    refused = await flows.async_configure(
        menu["flow_id"], {"next_step_id": "remove_forward"}
    )
    assert refused["type"] is FlowResultType.ABORT
    assert refused["reason"] == "forward_remove_refused"
    assert refused["description_placeholders"]["reason"] == (
        "its UPnP permission rules do not allow this change"
    )
    assert [m.external_port for m in home.igd.state.mappings] == [8123]
    assert "plain_http_forwarded" in home.issues()


async def test_changing_it_by_hand(home: Home) -> None:
    """The user keeps it for the router's own pages: nothing is touched."""
    await home.forward(80, 80)
    await home.setup()
    flows, menu = await _open(home, "port_80_forwarded")
    manual = await flows.async_configure(
        menu["flow_id"], {"next_step_id": "keep_forward"}
    )
    assert manual["reason"] == "forward_manual"
    assert [m.internal_client for m in home.igd.state.mappings] == [LOCAL]
    assert "port_80_forwarded" in home.issues()


async def test_a_forward_gone_since_the_check(home: Home) -> None:
    """Deleted on the router meanwhile and the router now silent: said, nothing sent."""
    await home.forward(8123, 8123)
    entry = await home.setup()
    await entry.runtime_data.remote_access.async_refresh()
    await home.igd.stop()
    await entry.runtime_data.remote_access.async_refresh()
    flows, menu = await _open(home, "plain_http_forwarded")
    gone = await flows.async_configure(
        menu["flow_id"], {"next_step_id": "remove_forward"}
    )
    assert gone["reason"] == "forward_gone_from_check"
