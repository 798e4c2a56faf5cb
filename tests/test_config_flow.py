"""Tests of the config flow."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from homeassistant import config_entries
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import probatio as vol
import pytest
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker

from custom_components.secure_remote_access.const import (
    CONF_DOMAINS,
    CONF_DUCKDNS_URL,
    CONF_UPNP_LOCATION,
    DOMAIN,
    SECTION_TESTING,
)

from .common import TOKEN, mock_entry, reply_duckdns, section_schema, suggested

TRANSLATIONS = (
    Path(__file__).parents[1]
    / "custom_components/secure_remote_access/translations/en.json"
)


async def _skip_certificate(hass: HomeAssistant, result: Any) -> Any:
    """Answer the certificate menu with DuckDNS only."""
    assert result["type"] is FlowResultType.MENU
    assert result["step_id"] == "certificates"
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "skip_certificate"}
    )


async def _start(hass: HomeAssistant) -> str:
    context = {"source": config_entries.SOURCE_USER}
    result = await hass.config_entries.flow.async_init(DOMAIN, context=context)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return result["flow_id"]


@pytest.mark.usefixtures("mock_duckdns")
@pytest.mark.parametrize(
    ("entered", "stored", "sent"),
    [
        ("myhome", ["myhome.duckdns.org"], "myhome"),
        (" MyHome.DuckDNS.org ", ["myhome.duckdns.org"], "myhome"),
        (
            "cabin, myhome.duckdns.org",
            ["cabin.duckdns.org", "myhome.duckdns.org"],
            "cabin,myhome",
        ),
    ],
)
async def test_user_creates_entry(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    caplog: pytest.LogCaptureFixture,
    entered: str,
    stored: list[str],
    sent: str,
) -> None:
    """Valid names and token create an entry after one real update request."""
    caplog.set_level(logging.DEBUG)
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"domain": entered, CONF_TOKEN: f" {TOKEN.upper()} "}
    )
    result = await _skip_certificate(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == stored[0]
    assert result["data"] == {CONF_DOMAINS: stored, CONF_TOKEN: TOKEN}
    assert result["result"].unique_id == ",".join(stored)
    method, url, _, _ = aioclient_mock.mock_calls[0]
    assert method == "GET"
    assert url.query["domains"] == sent
    assert url.query["token"] == TOKEN
    assert TOKEN not in caplog.text
    # No deprecated flow API (show_advanced_options goes away in 2027.6).
    assert "deprecated" not in caplog.text


@pytest.mark.usefixtures("mock_duckdns")
@pytest.mark.parametrize(
    ("domain", "token", "errors", "name"),
    [
        ("my home", TOKEN, {"domain": "invalid_domain_space"}, "my home"),
        (
            "myhome, foo.example.com",
            TOKEN,
            {"domain": "invalid_domain_not_duckdns"},
            "foo.example.com",
        ),
        ("a,b,c,d,e,f", TOKEN, {"domain": "invalid_domain_too_many"}, "6"),
        (" , ", TOKEN, {"domain": "invalid_domain_empty"}, ""),
        ("-home-", TOKEN, {"domain": "invalid_domain_invalid"}, "-home-"),
        ("myhome", "secret", {CONF_TOKEN: "invalid_token_format"}, ""),
        (
            "my_home",
            "x",
            {"domain": "invalid_domain_invalid", CONF_TOKEN: "invalid_token_format"},
            "my_home",
        ),
    ],
)
async def test_user_format_errors_make_no_request(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    domain: str,
    token: str,
    errors: dict[str, str],
    name: str,
) -> None:
    """Malformed names or tokens: an error naming the name, no network call, nothing lost."""
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"domain": domain, CONF_TOKEN: token}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert result["description_placeholders"]["name"] == name
    assert suggested(result["data_schema"].schema) == {
        "domain": domain,
        CONF_TOKEN: token,
    }
    assert aioclient_mock.call_count == 0


def test_every_name_error_is_translated() -> None:
    """Each reason a name is refused for has its own text, naming the name."""
    strings = json.loads(TRANSLATIONS.read_text(encoding="utf-8"))
    errors = strings["config"]["error"]
    for reason in ("empty", "space", "not_duckdns", "invalid", "too_many"):
        assert errors[f"invalid_domain_{reason}"]
        if reason != "empty":
            assert "{name}" in errors[f"invalid_domain_{reason}"]
    assert "{duckdns_url}" in errors["cannot_connect"]
    assert "{error}" in errors["cannot_connect"]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ({"text": "KO"}, "invalid_auth"),
        ({"text": "<html><h1>502 Bad Gateway</h1></html>"}, "cannot_connect"),
        ({"text": "OK"}, "cannot_connect"),
        ({"status": 404, "text": "Not Found"}, "cannot_connect"),
        ({"status": 500, "text": "error"}, "cannot_connect"),
        ({"exc": TimeoutError()}, "cannot_connect"),
    ],
)
async def test_user_service_errors_then_recover(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    reply: dict[str, object],
    error: str,
) -> None:
    """KO is a bad token; outages are connection errors; the form keeps the names."""
    reply_duckdns(aioclient_mock, **reply)  # type: ignore[arg-type]
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"domain": "myhome", CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    placeholders = result["description_placeholders"]
    assert placeholders["duckdns_url"] == "https://www.duckdns.org/update"
    if error == "cannot_connect":
        assert placeholders["error"]
        assert "Error" not in placeholders["error"]  # no Python class names
    # Nothing to type again: the names and the token stay.
    assert suggested(result["data_schema"].schema) == {
        "domain": "myhome",
        CONF_TOKEN: TOKEN,
    }

    reply_duckdns(aioclient_mock)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"domain": "myhome", CONF_TOKEN: TOKEN}
    )
    result = await _skip_certificate(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.usefixtures("mock_duckdns")
async def test_user_already_configured(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    """The same names twice abort, whatever order they were typed in."""
    mock_entry(**{CONF_DOMAINS: ["a.duckdns.org", "b.duckdns.org"]}).add_to_hass(hass)
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {"domain": "B.duckdns.org,a", CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert aioclient_mock.call_count == 0, "DuckDNS was updated before the check"


async def test_user_testing_section_duckdns_url(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    """The collapsed testing section lets a compatible server stand in for DuckDNS."""
    other = "http://127.0.0.1:8053/update"
    aioclient_mock.get(other, text="OK\n127.0.0.1\n\nUPDATED")
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            "domain": "myhome",
            CONF_TOKEN: TOKEN,
            SECTION_TESTING: {CONF_DUCKDNS_URL: "ftp://x"},
        },
    )
    assert result["errors"] == {"base": "invalid_url"}
    # The form keeps what was typed, in its section and the token too.
    schema = result["data_schema"].schema
    assert suggested(schema) == {"domain": "myhome", CONF_TOKEN: TOKEN}
    testing = section_schema(schema, SECTION_TESTING)
    assert suggested(testing) == {CONF_DUCKDNS_URL: "ftp://x"}
    # The section has no default of its own: the frontend would use it
    # ({}) instead of the suggested values inside, and lose the URL.
    section_key = next(key for key in schema if key == SECTION_TESTING)
    assert section_key.default is vol.UNDEFINED
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            "domain": "myhome",
            CONF_TOKEN: TOKEN,
            SECTION_TESTING: {CONF_DUCKDNS_URL: other},
        },
    )
    result = await _skip_certificate(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_DUCKDNS_URL] == other
    assert aioclient_mock.mock_calls[0][1].host == "127.0.0.1"
    assert all(call[1].host != "www.duckdns.org" for call in aioclient_mock.mock_calls)


async def test_user_testing_section_upnp_location(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    """A test UPnP gateway's description URL is checked and kept in the data."""
    reply_duckdns(aioclient_mock)
    location = "http://127.0.0.1:14005/rootDesc.xml"
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            "domain": "myhome",
            CONF_TOKEN: TOKEN,
            SECTION_TESTING: {CONF_UPNP_LOCATION: "router.lan"},
        },
    )
    assert result["errors"] == {"base": "invalid_upnp_location"}
    assert aioclient_mock.call_count == 0
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        {
            "domain": "myhome",
            CONF_TOKEN: TOKEN,
            SECTION_TESTING: {CONF_UPNP_LOCATION: f" {location} "},
        },
    )
    result = await _skip_certificate(hass, result)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_UPNP_LOCATION] == location


async def test_reauth(hass: HomeAssistant, aioclient_mock: AiohttpClientMocker) -> None:
    """A rejected token is replaced through the reauth flow and the entry reloads."""
    new_token = "0f0e0d0c-0b0a-4909-8807-060504030201"
    reply_duckdns(aioclient_mock, text="KO")
    entry = mock_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "nope"}
    )
    assert result["errors"] == {CONF_TOKEN: "invalid_token_format"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: new_token}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    reply_duckdns(aioclient_mock)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: new_token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_TOKEN] == new_token
    assert entry.data[CONF_DOMAINS] == ["myhome.duckdns.org"]


@pytest.mark.usefixtures("mock_duckdns")
async def test_reconfigure_names_and_token(
    hass: HomeAssistant,
) -> None:
    """Reconfigure validates like the first step and renames the entry."""
    entry = mock_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"domain": "bad name", CONF_TOKEN: TOKEN}
    )
    assert result["errors"] == {"domain": "invalid_domain_space"}
    assert suggested(result["data_schema"].schema)["domain"] == "bad name"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"domain": "cabin,myhome", CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_DOMAINS] == ["cabin.duckdns.org", "myhome.duckdns.org"]
    assert entry.unique_id == "cabin.duckdns.org,myhome.duckdns.org"
    assert entry.title == "cabin.duckdns.org"


@pytest.mark.usefixtures("mock_duckdns")
async def test_reconfigure_onto_other_entry_aborts(
    hass: HomeAssistant, aioclient_mock: AiohttpClientMocker
) -> None:
    """Two entries can never end up with the same names."""
    entry = mock_entry()
    entry.add_to_hass(hass)
    mock_entry(**{CONF_DOMAINS: ["cabin.duckdns.org"]}).add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"domain": "cabin", CONF_TOKEN: TOKEN}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_DOMAINS] == ["myhome.duckdns.org"]
    assert aioclient_mock.call_count == 0, "DuckDNS was updated before the check"
