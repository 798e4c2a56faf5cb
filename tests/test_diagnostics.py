"""Diagnostics tell a bug report what it needs and never a secret."""

from __future__ import annotations

import json
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.secure_remote_access.const import (
    CONF_CERTIFICATE_PATH,
    CONF_EAB_HMAC_KEY,
    CONF_EAB_KID,
    CONF_EMAIL,
    CONF_PRIVATE_KEY_PATH,
    DOMAIN,
)
from tests.fakes.pebble import DEFAULT_EAB_KEYS, PebbleServer

from .common import (
    TOKEN,
    StartDuckDns,
    last_outcome,
    pebble_options,
    read_leaf,
    setup_duckdns_entry,
)

EMAIL = "secret-person@example.org"


def _pem_body(pem: str) -> str:
    """The base64 lines of a PEM block: what must never leak."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


async def test_diagnostics_hold_no_secrets(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    pebble_eab: PebbleServer,
    tmp_path: Path,
    start_duckdns: StartDuckDns,
) -> None:
    """Token, e-mail, EAB HMAC key, account key and private key never appear."""
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    kid, hmac_key = next(iter(DEFAULT_EAB_KEYS.items()))
    _, url = await start_duckdns(pebble_eab)
    options = pebble_options(
        pebble_eab,
        **{
            CONF_CERTIFICATE_PATH: str(tmp_path / "fullchain.pem"),
            CONF_PRIVATE_KEY_PATH: str(tmp_path / "privkey.pem"),
            CONF_EMAIL: EMAIL,
            CONF_EAB_KID: kid,
            CONF_EAB_HMAC_KEY: hmac_key,
        },
    )
    entry = await setup_duckdns_entry(hass, url, options)
    assert last_outcome(entry)["renewed"] is True  # ordered right after setup
    await hass.services.async_call(
        DOMAIN, "run_security_checks", blocking=True, return_response=True
    )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    dump = json.dumps(diagnostics)
    accounts = await Store[dict[str, dict[str, str]]](
        hass, 1, f"{DOMAIN}.acme_accounts"
    ).async_load()
    assert accounts
    account_key = next(iter(accounts.values()))["key"]
    private_key = (tmp_path / "privkey.pem").read_text()
    for secret in (
        TOKEN,
        EMAIL,
        hmac_key,
        _pem_body(account_key),
        _pem_body(private_key),
    ):
        assert secret not in dump
    assert "PRIVATE KEY" not in dump
    # What a bug report needs is there.
    assert diagnostics["entry"]["options"][CONF_EMAIL] == "**REDACTED**"
    renewal = diagnostics["renewal"]["state"]
    leaf = read_leaf(tmp_path / "fullchain.pem")
    assert renewal["last_outcome"]["serial"] == format(leaf.serial_number, "x")
    assert diagnostics["renewal"]["state"]["last_result"] == "renewed"
    assert diagnostics["certificates"]["managed"]
    assert diagnostics["checklist"] is not None
    assert diagnostics["dns"]["state"]["ipv4"] == "127.0.0.1"
