"""The URLs a change breaks: named on its screen, updated once kept, restored on stop."""

from __future__ import annotations

from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.secure_remote_access.https_urls import (
    SetUrl,
    changes_for_serving,
    changes_for_stopping,
)
from tests.common import managed_options, mock_entry
from tests.fakes import certs

from .conftest import NAME, Setup, serve, stop

OTHER = "cabin.duckdns.org"


async def _keep_through_core_dialog(setup: Setup) -> None:
    await setup.restart()
    await setup.promote_in_core_dialog()
    assert setup.trial_issue() is None


async def test_serving_names_every_url_that_stops_working(
    hass: HomeAssistant, plain: Setup
) -> None:
    """An empty external URL and a plain internal one: both named, both offered."""
    local = f"http://homeassistant.local:{plain.port}"
    https = f"https://{NAME}:{plain.port}"
    await hass.config.async_update(internal_url=local)
    form = await plain.options_step("serve_https")
    assert form["type"] is FlowResultType.FORM
    fields = {str(key): key.default() for key in form["data_schema"].schema}
    assert fields == {"set_external_url": True, "set_internal_url": True}
    placeholders = form["description_placeholders"]
    assert placeholders["external_url"] == "-"
    assert placeholders["internal_url"] == local
    assert placeholders["new_external_url"] == https
    assert placeholders["new_internal_url"] == https

    result = await hass.config_entries.options.async_configure(
        form["flow_id"], {"set_external_url": True, "set_internal_url": True}
    )
    assert result["reason"] == "https_restarting"
    assert hass.config.internal_url == local  # only once kept
    await _keep_through_core_dialog(plain)
    assert hass.config.external_url == https
    assert hass.config.internal_url == https
    await hass.http.stop()


async def test_serving_another_entrys_certificate_names_the_url_it_breaks(
    hass: HomeAssistant, plain: Setup, tmp_path: Path
) -> None:
    """Two entries: the external URL of the first name would get the second's certificate.

    Browsers and the companion app refuse a certificate for cabin.duckdns.org
    at https://myhome.duckdns.org:8123, so that URL is named and offered too.
    """
    await serve(plain)
    await _keep_through_core_dialog(plain)
    assert hass.config.external_url == f"https://{NAME}:{plain.port}"
    cert, key = certs.issue([OTHER]).write(tmp_path / "ssl" / "cabin")
    other = mock_entry(domains=[OTHER])
    other.add_to_hass(hass)
    hass.config_entries.async_update_entry(other, options=managed_options(cert, key))
    assert await hass.config_entries.async_setup(other.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)

    menu = await hass.config_entries.options.async_init(other.entry_id)
    form = await hass.config_entries.options.async_configure(
        menu["flow_id"], {"next_step_id": "serve_https"}
    )
    assert form["type"] is FlowResultType.FORM
    fields = {str(key) for key in form["data_schema"].schema}
    assert fields == {"set_external_url"}
    assert form["description_placeholders"]["external_url"] == (
        f"https://{NAME}:{plain.port}"
    )
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["reason"] == "https_restarting"
    await _keep_through_core_dialog(plain)
    assert hass.config.external_url == f"https://{OTHER}:{plain.port}"

    # Stopping goes back to what the user had before either: not to the
    # first name's https:// address, dead once plain HTTP is served.
    menu = await hass.config_entries.options.async_init(other.entry_id)
    form = await hass.config_entries.options.async_configure(
        menu["flow_id"], {"next_step_id": "stop_https"}
    )
    assert form["description_placeholders"]["new_external_url"] == "-"
    result = await hass.config_entries.options.async_configure(form["flow_id"], {})
    assert result["reason"] == "https_restarting"
    await _keep_through_core_dialog(plain)
    assert hass.config.external_url is None
    await hass.http.stop()


async def test_unticked_urls_stay(hass: HomeAssistant, plain: Setup) -> None:
    """What the user leaves unticked is never touched."""
    await serve(plain, set_external_url=False)
    await _keep_through_core_dialog(plain)
    assert hass.config.external_url is None
    # Core still says SSL runs without a URL: that is true, so it stays.
    assert plain.core_ssl_issue() is not None
    await hass.http.stop()


async def test_stop_restores_the_urls_the_product_set(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Serve (both URLs set), then stop: both go back to what they were."""
    local = f"http://homeassistant.local:{plain.port}"
    https = f"https://{NAME}:{plain.port}"
    await hass.config.async_update(internal_url=local)
    await serve(plain)
    await _keep_through_core_dialog(plain)
    assert (hass.config.external_url, hass.config.internal_url) == (https, https)

    form = await stop(plain)
    placeholders = form["description_placeholders"]
    assert placeholders["external_url"] == https
    assert placeholders["new_external_url"] == "-"  # it was empty
    assert placeholders["internal_url"] == https
    assert placeholders["new_internal_url"] == local
    await _keep_through_core_dialog(plain)
    assert hass.config.external_url is None
    assert hass.config.internal_url == local
    assert plain.core_ssl_issue() is None
    # Serving again offers both again.
    form = await plain.options_step("serve_https")
    assert {str(key) for key in form["data_schema"].schema} == {
        "set_external_url",
        "set_internal_url",
    }
    await hass.http.stop()


async def test_stop_offers_plain_http_for_urls_of_the_user(
    hass: HomeAssistant, serving: Setup
) -> None:
    """An https URL to this port the user set: offered as http, kept if unticked."""
    mine = f"https://{NAME}:{serving.port}"
    proxy = "https://ha.example.com"  # another port: a proxy or a forward
    await hass.config.async_update(external_url=proxy, internal_url=mine)
    form = await stop(serving, set_internal_url=False)
    assert {str(key) for key in form["data_schema"].schema} == {"set_internal_url"}
    assert form["description_placeholders"]["new_internal_url"] == (
        f"http://{NAME}:{serving.port}"
    )
    await _keep_through_core_dialog(serving)
    assert hass.config.internal_url == mine
    assert hass.config.external_url == proxy
    await hass.http.stop()


async def test_a_url_changed_during_the_trial_is_left_alone(
    hass: HomeAssistant, plain: Setup
) -> None:
    """The user set another external URL meanwhile: keeping does not overwrite it."""
    await serve(plain)
    await plain.restart()
    await hass.config.async_update(external_url="https://elsewhere.example.org")
    await plain.promote_in_core_dialog()
    assert hass.config.external_url == "https://elsewhere.example.org"
    await hass.http.stop()


@pytest.mark.parametrize(
    ("external", "internal", "offered"),
    [
        (None, None, {"external_url"}),
        ("http://myhome.duckdns.org", None, {"external_url"}),  # a router forward
        ("https://myhome.duckdns.org", "http://192.168.1.5:8123", {"internal_url"}),
        ("https://myhome.duckdns.org", "http://192.168.1.5:80", set()),  # a proxy
        ("not a url", "http://homeassistant.local", set()),
    ],
)
def test_which_urls_serving_breaks(
    external: str | None, internal: str | None, offered: set[str]
) -> None:
    """Plain external URLs (any port), plain internal URLs to this port."""
    urls = {"external_url": external, "internal_url": internal}
    changes = changes_for_serving(urls, 8123, "https://myhome.duckdns.org:8123")
    assert {change.key for change in changes} == offered


def test_urls_of_another_name_on_this_port_are_offered() -> None:
    """HTTPS straight to this port for a name the certificate misses breaks too."""
    urls = {
        "external_url": "https://cabin.duckdns.org:8123",
        "internal_url": "https://cabin.duckdns.org",  # a proxy on 443: its own
    }
    covered = {"myhome.duckdns.org"}
    changes = changes_for_serving(
        urls, 8123, "https://myhome.duckdns.org:8123", covered.__contains__
    )
    assert [(c.key, c.new) for c in changes] == [
        ("external_url", "https://myhome.duckdns.org:8123")
    ]
    covered.add("cabin.duckdns.org")
    assert not changes_for_serving(
        urls, 8123, "https://myhome.duckdns.org:8123", covered.__contains__
    )


def test_which_urls_stopping_breaks() -> None:
    """Ours go back; https to this port becomes http with the same port; others stay."""
    urls = {"external_url": "https://a.example", "internal_url": "https://b:8443"}
    ours = {"internal_url": SetUrl("http://b.local:8443", "https://b:8443")}
    changes = {c.key: c.new for c in changes_for_stopping(urls, 443, ours)}
    assert changes == {
        "external_url": "http://a.example:443",
        "internal_url": "http://b.local:8443",
    }
    changes = {c.key: c.new for c in changes_for_stopping(urls, 8443, {})}
    assert changes == {"internal_url": "http://b:8443"}
