"""A proxy in front: named before Home Assistant itself is switched; its certificate kept fresh.

The Supervisor is the stand-in of tests/fakes/supervisor.py, read by the
hassio integration's real client; the NGINX add-on runs Debian's real nginx
with the add-on's configuration (tests/fakes/nginx.py).
"""

from __future__ import annotations

from typing import Any

import aiohttp
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.secure_remote_access import proxy, proxy_restart
from custom_components.secure_remote_access.const import CONF_PROXY_ADDON
from custom_components.secure_remote_access.issues import proxy_restart_issue_id
from custom_components.secure_remote_access.proxy import async_who_serves_managed
from custom_components.secure_remote_access.served import async_presented_serial
from tests.common import managed_options
from tests.fakes import certs
from tests.fakes.nginx import find_nginx
from tests.fakes.supervisor import FakeAddon, Fault

from .conftest import NAME, MakeSetup, OsSupervisor, Setup, serial_of

BEHIND_PROXY = {"use_x_forwarded_for": True, "trusted_proxies": ["172.30.33.0/24"]}
needs_nginx = pytest.mark.skipif(find_nginx() is None, reason="run scripts/setup")


@pytest.fixture
async def behind(make_setup: MakeSetup) -> Setup:
    """Plain HTTP behind a trusted proxy (the add-ons' network)."""
    return await make_setup(http_settings=BEHIND_PROXY)


async def _serve_menu(setup: Setup) -> dict[str, Any]:
    result = await setup.options_step("serve_https")
    assert result["type"] is FlowResultType.MENU, result
    assert result["step_id"] == "proxy_in_front"
    return result


async def _choose_restart(setup: Setup, restart: bool = True) -> dict[str, Any]:
    """Serve → the proxy warning → Keep the proxy's certificate fresh → submit."""
    menu = await _serve_menu(setup)
    form = await setup.hass.config_entries.options.async_configure(
        menu["flow_id"], {"next_step_id": "proxy_certificate"}
    )
    assert form["type"] is FlowResultType.FORM, form
    result = await setup.hass.config_entries.options.async_configure(
        form["flow_id"], {"restart_proxy": restart}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await setup.hass.async_block_till_done()
    return dict(form)


@needs_nginx
async def test_nginx_addon_named_before_serving(
    hass: HomeAssistant, behind: Setup, os_supervisor: OsSupervisor
) -> None:
    """The warning names the add-on; nothing is written until the user chooses."""
    nginx = os_supervisor.nginx(behind)
    menu = await _serve_menu(behind)
    assert menu["description_placeholders"]["proxies"] == nginx.name
    assert menu["description_placeholders"]["port"] == str(behind.port)
    assert menu["menu_options"] == ["proxy_certificate", "serve_https"]
    assert behind.store.pending is None
    assert not behind.restarts
    # Serving anyway is still possible: the explaining screen follows.
    form = await hass.config_entries.options.async_configure(
        menu["flow_id"], {"next_step_id": "serve_https"}
    )
    assert form["type"] is FlowResultType.FORM
    assert form["step_id"] == "serve_https"


@pytest.mark.parametrize(
    ("slug", "name", "restartable"),
    [
        ("9074a9fa_cloudflared", "Cloudflared", False),
        ("a0d7b954_nginxproxymanager", "Nginx Proxy Manager", False),
        ("2effc9b9_traefik", "Traefik", True),
        ("c80c7555_caddy-2", "Caddy 2", True),
    ],
)
async def test_each_proxy_addon_is_named(
    hass: HomeAssistant,
    behind: Setup,
    os_supervisor: OsSupervisor,
    slug: str,
    name: str,
    restartable: bool,
) -> None:
    """Store add-ons by the part of their slug after the repository's hash."""
    os_supervisor.supervisor.add(FakeAddon("core_ssh", "Terminal & SSH"))
    os_supervisor.supervisor.add(FakeAddon(slug, name, repository="a1b2c3d4"))
    menu = await _serve_menu(behind)
    assert menu["description_placeholders"]["proxies"] == name
    offered = ["proxy_certificate", "serve_https"] if restartable else ["serve_https"]
    assert menu["menu_options"] == offered


async def test_stopped_addons_and_other_addons_are_not_in_front(
    hass: HomeAssistant, plain: Setup, os_supervisor: OsSupervisor
) -> None:
    """A stopped proxy add-on and unrelated add-ons: nothing to warn about."""
    os_supervisor.supervisor.add(
        FakeAddon("core_nginx_proxy", "NGINX Home Assistant SSL proxy", "stopped")
    )
    os_supervisor.supervisor.add(FakeAddon("core_mosquitto", "Mosquitto broker"))
    form = await plain.options_step("serve_https")
    assert form["type"] is FlowResultType.FORM
    assert form["step_id"] == "serve_https"


async def test_proxy_on_the_network_without_supervisor(
    hass: HomeAssistant, make_setup: MakeSetup
) -> None:
    """Apache or NGINX on the LAN, a Cloudflare tunnel in Docker: the trusted addresses."""
    setup = await make_setup(
        http_settings={
            "use_x_forwarded_for": True,
            "trusted_proxies": ["192.168.1.20/32", "172.17.0.0/16"],
        }
    )
    menu = await _serve_menu(setup)
    assert menu["description_placeholders"]["proxies"] == (
        "192.168.1.20/32, 172.17.0.0/16"
    )
    assert menu["menu_options"] == ["serve_https"]


@pytest.mark.parametrize("answer", ["no_answer", "wrong_token"])
async def test_supervisor_not_answering_falls_back_to_trusted_proxies(
    hass: HomeAssistant,
    behind: Setup,
    os_supervisor: OsSupervisor,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    answer: str,
) -> None:
    """Without an answer the add-ons stay unknown: the trusted addresses are named."""
    os_supervisor.nginx(behind)
    if answer == "no_answer":
        monkeypatch.setattr(proxy, "SUPERVISOR_TIMEOUT", 0.2)
        os_supervisor.supervisor.stalled = True
    else:
        os_supervisor.supervisor.token = "another"
    menu = await _serve_menu(behind)
    assert menu["description_placeholders"]["proxies"] == "172.30.33.0/24"
    assert "The Supervisor could not list the add-ons" in caplog.text


@needs_nginx
async def test_proxy_certificate_names_the_files_it_reads(
    hass: HomeAssistant, behind: Setup, os_supervisor: OsSupervisor
) -> None:
    """The add-on reads the managed files: ticked by default, saved in the options."""
    os_supervisor.nginx(behind)
    form = await _choose_restart(behind)
    placeholders = form["description_placeholders"]
    assert placeholders["addon_certificate"] == str(behind.cert)
    assert placeholders["addon_key"] == str(behind.key)
    assert not form["errors"]
    assert behind.entry.options[CONF_PROXY_ADDON] == "core_nginx_proxy"
    await _choose_restart(behind, restart=False)
    assert CONF_PROXY_ADDON not in behind.entry.options


@needs_nginx
async def test_proxy_reading_other_files_is_said(
    hass: HomeAssistant, behind: Setup, os_supervisor: OsSupervisor
) -> None:
    """Other certfile/keyfile options: the form warns and is not ticked."""
    os_supervisor.nginx(behind, certfile="other.pem", keyfile="other-key.pem")
    menu = await _serve_menu(behind)
    form = await hass.config_entries.options.async_configure(
        menu["flow_id"], {"next_step_id": "proxy_certificate"}
    )
    assert form["errors"] == {"base": "proxy_reads_other_files"}
    assert form["description_placeholders"]["addon_certificate"].endswith("other.pem")
    field = next(iter(form["data_schema"].schema))
    assert field.default() is False


async def _with_restart_chosen(
    setup: Setup, nginx: FakeAddon, *, running: bool = True
) -> None:
    """As on the machine: nginx runs with the current pair; the restart is chosen."""
    assert nginx.service is not None
    if running:
        assert await nginx.service.start()
    hass = setup.hass
    hass.config_entries.async_update_entry(
        setup.entry,
        options={
            **managed_options(setup.cert, setup.key),
            CONF_PROXY_ADDON: nginx.slug,
        },
    )
    await hass.config_entries.async_reload(setup.entry.entry_id)
    await hass.async_block_till_done()


async def _nginx_serial(nginx: FakeAddon) -> str | None:
    port = (nginx.network or {})["443/tcp"]
    assert port is not None
    return await async_presented_serial("127.0.0.1", port, NAME)


@needs_nginx
async def test_restarted_after_renewal_and_confirmed(
    hass: HomeAssistant, behind: Setup, os_supervisor: OsSupervisor
) -> None:
    """A renewal restarts nginx; it presents the new serial; no issue."""
    nginx = os_supervisor.nginx(behind)
    await _with_restart_chosen(behind, nginx)
    assert await _nginx_serial(nginx) == serial_of(behind.pair)

    renewed = await behind.renew()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert nginx.restarts == 1
    assert await _nginx_serial(nginx) == renewed["serial"]
    assert behind.issue(proxy_restart_issue_id(behind.entry.entry_id)) is None
    server = await async_who_serves_managed(hass, behind.entry)
    assert server is not None
    assert server.name == nginx.name
    assert server.port == (nginx.network or {})["443/tcp"]


@needs_nginx
async def test_no_restart_unless_chosen(
    hass: HomeAssistant, behind: Setup, os_supervisor: OsSupervisor
) -> None:
    """Without the option nothing is restarted: nginx keeps the old certificate."""
    nginx = os_supervisor.nginx(behind)
    assert nginx.service is not None
    assert await nginx.service.start()
    await behind.renew()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert nginx.restarts == 0
    assert await _nginx_serial(nginx) == serial_of(behind.pair)


@needs_nginx
async def test_restart_refused_raises_an_issue_fixed_by_restarting(
    hass: HomeAssistant, behind: Setup, os_supervisor: OsSupervisor
) -> None:
    """The Supervisor's error is shown; Submit restarts again and clears it."""
    nginx = os_supervisor.nginx(behind)
    await _with_restart_chosen(behind, nginx)
    nginx.fault = Fault.DOCKER_ERROR
    renewed = await behind.renew()
    await hass.async_block_till_done(wait_background_tasks=True)
    issue_id = proxy_restart_issue_id(behind.entry.entry_id)
    issue = behind.issue(issue_id)
    assert issue is not None
    assert issue.is_persistent
    assert issue.translation_placeholders is not None
    assert (
        "An unknown error occurred with addon core_nginx_proxy"
        in (issue.translation_placeholders["error"])
    )

    result = await behind.fix(issue_id)
    assert result["type"] == "abort"
    assert result["reason"] == "proxy_restart_failed"
    assert behind.issue(issue_id) is not None

    nginx.fault = None
    result = await behind.fix(issue_id)
    assert result["type"] == "create_entry", result
    assert behind.issue(issue_id) is None
    assert await _nginx_serial(nginx) == renewed["serial"]


@needs_nginx
async def test_supervisor_not_answering_the_restart(
    hass: HomeAssistant,
    behind: Setup,
    os_supervisor: OsSupervisor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restart that never ends is a failure after the time-out."""
    monkeypatch.setattr(proxy_restart, "RESTART_TIMEOUT", 0.3)
    nginx = os_supervisor.nginx(behind)
    await _with_restart_chosen(behind, nginx)
    nginx.fault = Fault.NO_ANSWER
    await behind.renew()
    await hass.async_block_till_done(wait_background_tasks=True)
    issue = behind.issue(proxy_restart_issue_id(behind.entry.entry_id))
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert "did not answer" in issue.translation_placeholders["error"]


@needs_nginx
async def test_proxy_dying_after_the_restart(
    hass: HomeAssistant, behind: Setup, os_supervisor: OsSupervisor
) -> None:
    """nginx refuses its configuration (a key that does not match): the state says so."""
    nginx = os_supervisor.nginx(behind, keyfile="other-key.pem")
    (behind.cert.parent / "other-key.pem").write_bytes(
        certs.key_to_pem(certs.new_key())
    )
    await _with_restart_chosen(behind, nginx, running=False)
    await behind.renew()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert nginx.restarts == 1, nginx.restarts
    assert nginx.state == "error", nginx.service.last_error  # type: ignore[union-attr]
    issue = behind.issue(proxy_restart_issue_id(behind.entry.entry_id))
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["error"] == "it is error after the restart"


@needs_nginx
async def test_wrong_certificate_after_the_restart(
    hass: HomeAssistant,
    behind: Setup,
    os_supervisor: OsSupervisor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Running, but the handshake shows another serial: not confirmed."""
    monkeypatch.setattr(proxy_restart, "CONFIRM_DELAY", 0)
    nginx = os_supervisor.nginx(behind, domain="other.example.org")
    await _with_restart_chosen(behind, nginx)
    await behind.renew()
    await hass.async_block_till_done(wait_background_tasks=True)
    issue = behind.issue(proxy_restart_issue_id(behind.entry.entry_id))
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert "no TLS handshake" in issue.translation_placeholders["error"]


async def test_who_serves_the_managed_certificate(
    hass: HomeAssistant, serving: Setup
) -> None:
    """Home Assistant itself, when its server serves the managed pair."""
    server = await async_who_serves_managed(hass, serving.entry)
    assert server is not None
    assert (server.name, server.port, server.proxy) == (
        "Home Assistant",
        serving.port,
        None,
    )
    await hass.http.stop()


async def test_nobody_serves_the_managed_certificate(
    hass: HomeAssistant, plain: Setup
) -> None:
    """Plain HTTP and no proxy: nobody."""
    assert await async_who_serves_managed(hass, plain.entry) is None


async def test_http_without_tls_fix_names_the_proxy_too(
    hass: HomeAssistant, plain: Setup, os_supervisor: OsSupervisor
) -> None:
    """The checklist's fix flow warns the same way before its serve step."""
    os_supervisor.supervisor.add(FakeAddon("9074a9fa_cloudflared", "Cloudflared"))
    flow = await plain.http_without_tls_fix()
    assert flow["type"] == "menu", flow
    assert flow["step_id"] == "proxy_in_front"
    assert flow["menu_options"] == ["serve_https"]
    assert flow["description_placeholders"]["proxies"] == "Cloudflared"
    flow = await plain.fix_step(flow, {"next_step_id": "serve_https"})
    assert flow["step_id"] == "serve_https", flow
    assert plain.store.pending is None


@needs_nginx
async def test_the_addon_stand_in_proxies_plain_http(
    hass: HomeAssistant, make_setup: MakeSetup, os_supervisor: OsSupervisor
) -> None:
    """The stand-in is a real proxy: through nginx's HTTPS, Home Assistant answers.

    (Once Home Assistant serves HTTPS itself, nginx's plain-HTTP upstream gets
    a TLS server and the requests fail: that is what the warning is about.)
    """
    setup = await make_setup(
        http_settings={"use_x_forwarded_for": True, "trusted_proxies": ["127.0.0.1"]}
    )
    nginx = os_supervisor.nginx(setup)
    assert nginx.service is not None
    assert await nginx.service.start()
    port = (nginx.network or {})["443/tcp"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"https://127.0.0.1:{port}/api/",
            ssl=False,
            server_hostname=NAME,
            headers={"Host": NAME},
        ) as response,
    ):
        assert response.headers["Server"] == "nginx"
        # Home Assistant's own answer (no api component here), its headers too.
        assert response.status == 404
        assert response.headers["Referrer-Policy"] == "no-referrer"


@needs_nginx
async def test_a_proxy_stopped_on_purpose_is_not_started_by_a_renewal(
    hass: HomeAssistant, behind: Setup, os_supervisor: OsSupervisor
) -> None:
    """The user stopped NGINX (moved to another proxy): a renewal leaves it stopped.

    The Supervisor's restart starts a stopped add-on; a stopped proxy reads
    the renewed files whenever it is started again.
    """
    nginx = os_supervisor.nginx(behind)
    await _with_restart_chosen(behind, nginx, running=False)
    nginx.state = "stopped"
    await behind.renew()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert nginx.restarts == 0
    assert nginx.state == "stopped"
    assert behind.issue(proxy_restart_issue_id(behind.entry.entry_id)) is None


@needs_nginx
async def test_an_uninstalled_proxy_is_forgotten_by_the_fix(
    hass: HomeAssistant, behind: Setup, os_supervisor: OsSupervisor
) -> None:
    """NGINX uninstalled: the issue says so; its fix stops restarting it for good.

    Nothing else offers to turn the restart off once no proxy is in front.
    """
    nginx = os_supervisor.nginx(behind)
    await _with_restart_chosen(behind, nginx)
    assert nginx.service is not None
    await nginx.service.stop()
    del os_supervisor.supervisor.addons[nginx.slug]
    await behind.renew()
    await hass.async_block_till_done(wait_background_tasks=True)
    issue_id = proxy_restart_issue_id(behind.entry.entry_id)
    issue = behind.issue(issue_id)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert "does not exist" in issue.translation_placeholders["error"]

    result = await behind.fix(issue_id)
    assert result["type"] == "create_entry", result
    await hass.async_block_till_done()
    assert CONF_PROXY_ADDON not in behind.entry.options
    assert behind.issue(issue_id) is None
    requests = len(os_supervisor.supervisor.requests)
    await behind.renew()
    await hass.async_block_till_done(wait_background_tasks=True)
    assert behind.issue(issue_id) is None
    assert len(os_supervisor.supervisor.requests) == requests


async def test_a_lan_proxy_next_to_a_proxy_addon_is_named_too(
    hass: HomeAssistant, make_setup: MakeSetup, os_supervisor: OsSupervisor
) -> None:
    """Home Assistant OS with Cloudflared and Apache on the LAN: both break, both named.

    The add-ons' own network (172.30.32.0/23) is the add-on's; another
    trusted address is a proxy of its own.
    """
    setup = await make_setup(
        http_settings={
            "use_x_forwarded_for": True,
            "trusted_proxies": [
                "172.30.33.0/24",
                "fd0c:ac1e:2100::/48",
                "192.168.1.20/32",
            ],
        }
    )
    os_supervisor.supervisor.add(
        FakeAddon("9074a9fa_cloudflared", "Cloudflared", repository="9074a9fa")
    )
    menu = await _serve_menu(setup)
    assert menu["description_placeholders"]["proxies"] == (
        "Cloudflared, 192.168.1.20/32"
    )
    await hass.http.stop()
