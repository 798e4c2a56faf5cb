"""Acceptance: a user follows the README's sandbox walk-through in the frontend.

Debian's ``chromium``, driven headless by Playwright (no browser download)
and started with the options the sandbox prints, logs into the frontend of a
real ``hass`` process, adds Secure Remote Access through Settings -> Devices
& services, fills the config flow against the sandbox (DuckDNS stand-in,
Pebble), and waits on the device page until the certificate sensors show the
certificate the integration obtained by itself. Then it serves the
certificate: Home Assistant restarts (the sandbox starts it again, as the
Supervisor does), the browser opens the printed HTTPS address, logs in,
confirms Home Assistant's own "Confirm new HTTP server configuration"
dialog, and finds the Repairs issue gone and the external URL set. Before
that it shows the README's dashboard card on a dashboard of its own. Every
step leaves a screenshot in ``test-artifacts/browser``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
import os
from pathlib import Path
import re
import shutil
import time
from typing import Any

import aiohttp
from cryptography import x509
from playwright.async_api import (
    Page,
    TimeoutError as PlaywrightTimeoutError,
    async_playwright,
    expect,
)
import pytest
import yaml

from tests.acceptance.client import PASSWORD, USERNAME, HassClient
from tests.acceptance.conftest import ARTIFACTS, REPO
from tests.fakes.sandbox import FQDN, Sandbox

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(480)]

#: Debian's chromium package; SRA_CHROMIUM points elsewhere.
CHROMIUM = os.environ.get("SRA_CHROMIUM", "/usr/bin/chromium")
#: Headless, as root, and without the background connections a closed
#: network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ARTIFACTS / "browser"
#: The first renewal check runs 10 to 60 seconds after setup.
ISSUANCE_TIMEOUT_MS = 120_000
BRAND_SEARCH_ATTEMPTS = 4
BRAND_SEARCH_TIMEOUT_MS = 15_000


@dataclass
class Screenshots:
    """Numbered screenshots of a page, one per step."""

    page: Page
    folder: Path
    count: int = 0

    async def take(self, name: str) -> None:
        """Save the page as ``NN-name.png``."""
        self.count += 1
        await self.page.screenshot(
            path=self.folder / f"{self.count:02d}-{name}.png", animations="disabled"
        )


@pytest.fixture
async def page(sandbox: Sandbox, socket_enabled: None) -> AsyncIterator[Page]:
    """A fresh headless Debian chromium page on the sandbox's Home Assistant.

    Started with the options the sandbox prints for its HTTPS address; the
    sandbox restarts Home Assistant when it exits to restart.
    """
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: run scripts/setup"
    async with aiohttp.ClientSession() as session:
        await HassClient(sandbox.url, session).onboard()
    sandbox.supervise()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *sandbox.browser_args()]
        )
        context = await browser.new_context(
            locale="en-US", viewport={"width": 1280, "height": 1000}
        )
        context.set_default_timeout(30_000)
        try:
            yield await context.new_page()
        finally:
            await browser.close()
    # The sandbox's restarting thread ends with Home Assistant.
    assert await asyncio.to_thread(sandbox.stop_hass) == 0, sandbox.log_tail()


async def test_add_integration_in_the_frontend(page: Page, sandbox: Sandbox) -> None:
    """Log in, add the integration, fill every step, see the certificate sensors.

    On the device page first, then on the Overview dashboard.
    """
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    shots = Screenshots(page, SHOTS)
    values = sandbox.values()
    try:
        await _log_in(page, sandbox.url, shots)
        await _add_integration(page, sandbox.url, values, shots)
        await _check_device_page(page, shots)
        await _fix_an_endpoint_list(page, sandbox.url, shots)
        await _open_a_repair(page, shots)
        await _find_the_actions(page, shots)
        await _show_the_readme_dashboard_card(page, sandbox.url, shots)
        await _serve_https(page, sandbox, shots)
        await _confirm_after_the_restart(page, sandbox, shots)
    except Exception:
        await shots.take("failure")
        raise

    chain = x509.load_pem_x509_certificates(sandbox.certificate_path.read_bytes())
    names = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [FQDN]


async def _log_in(page: Page, url: str, shots: Screenshots) -> None:
    await page.goto(url)
    await page.get_by_role("textbox", name="Username").fill(USERNAME)
    await page.get_by_role("textbox", name="Password").fill(PASSWORD)
    await shots.take("login")
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{url}/home/**")


async def _add_integration(
    page: Page, url: str, values: dict[str, str], shots: Screenshots
) -> None:
    # Settings -> Devices & services -> Add integration.
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_role("link", name="Devices & services").click()
    await page.wait_for_url(f"{url}/config/integrations/dashboard")
    await page.get_by_role("button", name="Add integration").click()
    search = page.get_by_placeholder("Search for a brand name")
    brand = page.get_by_text("Secure Remote Access", exact=True).first
    # The brand list loads in the background; on a busy machine the filter can
    # run on a list that is still empty. Type the search again until it shows.
    for attempt in range(BRAND_SEARCH_ATTEMPTS):
        await search.fill("Secure Remote")
        try:
            await brand.wait_for(timeout=BRAND_SEARCH_TIMEOUT_MS)
            break
        except PlaywrightTimeoutError:
            if attempt == BRAND_SEARCH_ATTEMPTS - 1:
                await shots.take("search")
                raise
            await search.fill("")
    await shots.take("search")
    await brand.click()

    # DuckDNS, first with a mistyped token: the error names it, nothing is lost.
    names = page.get_by_role("textbox", name="DuckDNS names")
    token = page.get_by_role("textbox", name="Token")
    await names.fill(values["domain"])
    await token.fill(values["token"][:-4])
    # The sandbox's DuckDNS stand-in goes in the collapsed testing section.
    url_field = page.get_by_role("textbox", name="DuckDNS update URL")
    await expect(url_field).to_be_hidden()
    await page.get_by_text("For testing").click()
    await url_field.fill(values["duckdns_url"])
    await page.get_by_role("textbox", name="UPnP gateway description URL").fill(
        values["upnp_location"]
    )
    await shots.take("duckdns")
    await page.get_by_role("button", name="Submit").click()
    await expect(page.get_by_text("A DuckDNS token looks like")).to_be_visible()
    await expect(names).to_have_value(values["domain"])
    await expect(token).to_have_value(values["token"][:-4])
    if not await url_field.is_visible():
        await page.get_by_text("For testing").click()
    await expect(url_field).to_have_value(values["duckdns_url"])
    await shots.take("duckdns-error")
    await token.fill(values["token"])
    await page.get_by_role("button", name="Submit").click()

    # The flow checked the token with DuckDNS and offers a certificate.
    await expect(page.get_by_text("Obtain a certificate")).to_be_visible()
    await shots.take("certificate-menu")
    await page.get_by_text("Obtain a certificate").click()

    # The certificate: the CA list shows translated names; Pebble is another CA.
    authority = page.locator("ha-selector-select").filter(
        has_text="Certificate authority"
    )
    await expect(authority).to_contain_text("Let's Encrypt")
    await authority.click()
    await page.get_by_role("menuitem", name="Another ACME CA").click()
    await expect(authority).to_contain_text("Another ACME CA")
    await expect(page.get_by_role("menu")).to_be_hidden()
    await page.get_by_role("textbox", name="Directory URL of the other CA").fill(
        values["acme_directory_url"]
    )
    await shots.take("certificate-authority")
    for label, key in (
        ("Certificate profile", "profile"),
        ("Certificate file", "certificate_path"),
        ("Private key file", "private_key_path"),
        ("CA bundle of the ACME server", "acme_ca_bundle"),
    ):
        await page.get_by_role("textbox", name=label).fill(values[key])
    await page.get_by_text("For testing").click()
    dns_server = page.get_by_role("textbox", name="DNS server for propagation checks")
    await dns_server.fill(values["dns_server"])
    await dns_server.scroll_into_view_if_needed()
    await shots.take("certificate-form")
    # A file that is no certificate as the CA bundle: an error on that field.
    bundle = page.get_by_role("textbox", name="CA bundle of the ACME server")
    await bundle.fill(str(Path(values["acme_ca_bundle"]).parent / "hass.log"))
    await page.get_by_role("button", name="Submit").click()
    await expect(page.get_by_text("holds no certificate")).to_be_visible()
    await shots.take("certificate-error")
    # Only the bundle is corrected: the other fields, the section too, kept.
    await expect(
        page.get_by_role("textbox", name="Directory URL of the other CA")
    ).to_have_value(values["acme_directory_url"])
    if not await dns_server.is_visible():
        await page.get_by_text("For testing").click()
    await expect(dns_server).to_have_value(values["dns_server"])
    await bundle.fill(values["acme_ca_bundle"])
    await page.get_by_role("button", name="Submit").click()

    # The CA's terms; accepting them creates the ACME account.
    await expect(
        page.get_by_role("paragraph").filter(has_text="I accept the terms")
    ).to_be_visible()
    await expect(page.get_by_text(values["acme_directory_url"])).to_be_visible()
    await page.locator("ha-switch").click()
    await expect(page.get_by_role("switch")).to_be_checked()
    await shots.take("terms")
    await page.get_by_role("button", name="Submit").click()

    # Created: the frontend offers to name the new device.
    await expect(page.get_by_role("textbox", name="Device name")).to_have_value(FQDN)
    await shots.take("created")
    await page.get_by_role("button", name="Skip and finish").click()


async def _check_device_page(page: Page, shots: Screenshots) -> None:
    await page.get_by_role("link", name="Secure Remote Access").click()
    await page.get_by_role("button", name=FQDN).first.click()
    await expect(page.get_by_role("heading", name="Sensors")).to_be_visible()
    await shots.take("device-before-issuance")
    # The integration issues the first certificate by itself within a minute;
    # the device page updates live. The accessibility tree is matched because
    # the rows' text lives in shadow roots that text assertions do not read.
    body = expect(page.locator("body"))
    await body.to_match_aria_snapshot(
        "- list: /Managed certificate days remaining (89|90)d/",
        timeout=ISSUANCE_TIMEOUT_MS,
    )
    for row in (
        "Managed certificate expiry In 3 months",
        "Managed certificate status OK",
        "DuckDNS update status OK",
        "Last renewal result Renewed",
        # Once the renewal is recorded, the next one is weeks away (not "Now").
        "Next certificate renewal (In|Next) ",
    ):
        await body.to_match_aria_snapshot(f"- list: /{row}/", timeout=30_000)
    await shots.take("device")

    # The default Overview dashboard shows them under Devices (no area set).
    await page.get_by_role("link", name="Overview").click()
    # The tile's container sits above its label and takes the click.
    await page.get_by_text("Devices", exact=True).click(force=True)
    await expect(page.get_by_text("Managed certificate days remaining")).to_be_visible()
    await shots.take("overview")


async def _settings(page: Page, *path: str) -> None:
    """Follow the README's navigation: **Settings → ... → ...** by menu names."""
    await page.get_by_role("link", name="Settings").first.click()
    for name in path:
        await page.get_by_role("link", name=name).first.click()


async def _fix_an_endpoint_list(page: Page, url: str, shots: Screenshots) -> None:
    """Configure → Certificate monitoring: every bad line named, nothing retyped."""
    await _settings(page, "Devices & services")
    await page.wait_for_url(f"{url}/config/integrations/dashboard")
    await page.get_by_role("link", name="Secure Remote Access").click()
    await page.get_by_role("button", name="Configure").first.click()
    await page.get_by_text("Certificate monitoring").click()
    endpoints = page.get_by_role("textbox", name="Endpoints")
    await endpoints.fill("127.0.0.1:8123\nmy router\nhttps://127.0.0.1:9/")
    await page.get_by_role("button", name="Submit").click()
    await expect(page.get_by_text("2: “my router”")).to_be_visible()
    await shots.take("endpoints-error")
    await expect(endpoints).to_have_value(
        "127.0.0.1:8123\nmy router\nhttps://127.0.0.1:9/"
    )
    await endpoints.fill("127.0.0.1:8123\nhttps://127.0.0.1:9/")
    await page.get_by_role("button", name="Submit").click()
    await expect(page.get_by_text("Options successfully saved")).to_be_visible()
    await shots.take("endpoints-saved")
    await page.get_by_role("button", name="Finish").click()


async def _serve_https(page: Page, sandbox: Sandbox, shots: Screenshots) -> None:
    """Configure → Serve the certificate: one screen says what changes; submit."""
    await page.keyboard.press("Escape")
    await _settings(page, "Devices & services")
    await page.get_by_role("link", name="Secure Remote Access").click()
    await page.get_by_role("button", name="Configure").first.click()
    await page.get_by_text("Serve the certificate from Home Assistant").click()
    await expect(page.get_by_text("takes its place")).to_be_visible()
    await expect(page.get_by_text(f"https://{FQDN}:").first).to_be_visible()
    external = page.get_by_role(
        "checkbox", name=f"Set the external URL to {sandbox.https_url}"
    )
    await expect(external).to_be_checked()
    await shots.take("serve-https")
    await page.get_by_role("button", name="Submit").click()
    await expect(
        page.get_by_text("Home Assistant restarts with the new")
    ).to_be_visible()
    await shots.take("serve-https-restarting")


async def _confirm_after_the_restart(
    page: Page, sandbox: Sandbox, shots: Screenshots
) -> None:
    """The printed address, a new login, core's dialog; then nothing left to keep."""
    deadline = time.monotonic() + sandbox.boot_timeout
    while not (sandbox.restarts and await asyncio.to_thread(sandbox.answers)):
        assert time.monotonic() < deadline, sandbox.log_tail()
        await asyncio.sleep(0.5)
    assert sandbox.serves_https()
    await page.goto(sandbox.https_url)
    await page.get_by_role("textbox", name="Username").fill(USERNAME)
    await page.get_by_role("textbox", name="Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    title = page.get_by_text("Confirm new HTTP server configuration")
    # Home Assistant may still be starting: the dialog comes once it has.
    await expect(title).to_be_visible(timeout=120_000)
    await expect(page.get_by_text("SSL certificate path")).to_be_visible()
    await shots.take("core-confirm-dialog")
    await page.get_by_role("button", name="Confirm", exact=True).click()
    await expect(title).to_be_hidden()

    # The store says kept: our "Keep serving HTTPS?" goes within seconds.
    await _settings(page, "System", "Repairs")
    await expect(page.get_by_text("Keep serving HTTPS?")).to_be_hidden(timeout=30_000)
    await expect(
        page.get_by_text("SSL is configured without an external URL")
    ).to_be_hidden()
    await shots.take("repairs-after-confirm")
    # The ticked box applied: Settings → System → Network shows the HTTPS URL.
    await _settings(page, "System", "Network")
    # (Its first field, under "Internet"; the fields have no label of their own.)
    await expect(page.get_by_text("Internet", exact=True)).to_be_visible()
    await expect(page.get_by_role("textbox").first).to_have_value(sandbox.https_url)
    await shots.take("network-url")


async def _open_a_repair(page: Page, shots: Screenshots) -> None:
    """**Settings → System → Repairs**: a finding explains why it matters first."""
    await _settings(page, "System", "Repairs")
    await page.get_by_text("Failed logins never ban anyone").click()
    await expect(page.get_by_text("Why it matters:")).to_be_visible()
    await shots.take("repair")
    await page.keyboard.press("Escape")


async def _find_the_actions(page: Page, shots: Screenshots) -> None:
    """**Settings → Tools → Actions** has the renew action."""
    await _settings(page, "Tools", "Actions")
    await page.get_by_text("Action", exact=True).last.click()
    # The picker's own search field (typing elsewhere triggers shortcuts).
    await page.get_by_placeholder(re.compile("^Search")).last.fill("Renew certificate")
    await expect(
        page.get_by_text("secure_remote_access.renew_certificate")
    ).to_be_visible()
    await shots.take("actions")


DASHBOARD_URL_PATH = "remote-access"
#: What the frontend's dashboard editor sends: a new dashboard, then its config.
SAVE_DASHBOARD_JS = """
async ({urlPath, title, config}) => {
  const hass = document.querySelector("home-assistant").hass;
  await hass.callWS({
    type: "lovelace/dashboards/create",
    url_path: urlPath,
    title: title,
    icon: "mdi:shield-lock-outline",
    show_in_sidebar: true,
  });
  await hass.callWS({type: "lovelace/config/save", url_path: urlPath, config});
}
"""


def readme_dashboard_card() -> dict[str, Any]:
    """The card configuration of the README's "On a dashboard" section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## On a dashboard\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    card: dict[str, Any] = yaml.safe_load(block)
    return card


async def _show_the_readme_dashboard_card(
    page: Page, url: str, shots: Screenshots
) -> None:
    """The README's card, saved through the frontend's own connection as its
    dashboard editor saves it, renders every tile without an error."""
    card = readme_dashboard_card()
    await page.keyboard.press("Escape")  # whatever the last step left open
    await page.evaluate(
        SAVE_DASHBOARD_JS,
        {
            "urlPath": DASHBOARD_URL_PATH,
            "title": "Remote access",
            "config": {"views": [{"title": "Remote access", "cards": [card]}]},
        },
    )
    await page.get_by_role("link", name="Remote access").click()
    await page.wait_for_url(f"{url}/{DASHBOARD_URL_PATH}/**")
    tiles = page.locator("hui-tile-card")
    await expect(tiles).to_have_count(5)
    await expect(page.locator("hui-error-card")).to_have_count(0)
    await expect(page.locator("hui-warning")).to_have_count(0)
    body = expect(page.locator("body"))
    for tile in (
        "Certificate expires in (89|90)d",
        "Next renewal (In|Next) ",
        "Last renewal Renewed",
        "From the internet Reachable",
        "Security findings [0-9]+",
    ):
        await body.to_match_aria_snapshot(f"- button /{tile}/")
    await shots.take("dashboard")

    # Its details: reachable, so no reason (it read "Reason: Unknown").
    await page.get_by_role("button", name=re.compile("^From the internet")).click()
    await page.get_by_role("button", name="Menu", exact=True).click()
    await page.get_by_text("Details", exact=True).click()
    await expect(page.get_by_text("Attributes", exact=True)).to_be_visible()
    await expect(page.get_by_text("Hairpin probe")).to_be_visible()
    await expect(page.get_by_text("Router WAN address")).to_be_visible()
    await expect(page.get_by_text("Reason", exact=True)).to_have_count(0)
    await shots.take("remote-access-details")
    await page.keyboard.press("Escape")
