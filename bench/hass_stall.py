"""Section 2, inside Home Assistant: loop stalls in a real ``hass`` process.

Starts the sandbox (tests/fakes/sandbox.py: Pebble, challtestsrv, the DuckDNS
stand-in, ``hass``) in a temporary configuration directory with the bench-only
probe component (bench/sra_bench_probe, copied there, never into the integration),
onboards, adds the integration with an RSA 4096 key, then asks the probe to
measure: idle, forced renewals, and refreshes of 100 TLS endpoints.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
import shutil
import tempfile
from typing import Any

import aiohttp

from tests.acceptance.client import DOMAIN, HassClient, section_fields, suggested
from tests.fakes.pebble import _free_port
from tests.fakes.sandbox import Sandbox

from .common import ROOT
from .endpoints import HOST, tls_endpoints

PROBE = "sra_bench_probe"
ROUNDS = 3
ENDPOINTS = 100
LATENCIES_MS = (0, 50)


def _install_probe(sandbox: Sandbox) -> None:
    """custom_components: a link to the integration and a copy of the probe."""
    components = sandbox.config_dir / "custom_components"
    components.unlink()
    components.mkdir()
    (components / "__init__.py").write_text("")
    (components / DOMAIN).symlink_to(
        ROOT / "custom_components" / DOMAIN, target_is_directory=True
    )
    shutil.copytree(
        ROOT / "bench" / PROBE,
        components / PROBE,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    config = sandbox.config_dir / "configuration.yaml"
    # Info, not the sandbox's debug logging: what an installation runs with.
    text = config.read_text().replace(
        f"custom_components.{DOMAIN}: debug", f"custom_components.{DOMAIN}: info"
    )
    config.write_text(text + f"{PROBE}:\n")


async def _add_entry(client: HassClient, sandbox: Sandbox) -> str:
    """The config flow over REST, as the frontend runs it, with an RSA 4096 key."""
    values = sandbox.values()
    form = await client.request(
        "POST", "/api/config/config_entries/flow", {"handler": DOMAIN}
    )
    flow_id = form["flow_id"]
    await client.flow_step(
        flow_id,
        {
            **suggested(form),
            "domain": values["domain"],
            "token": values["token"],
            "testing": {"duckdns_url": values["duckdns_url"]},
        },
    )
    form = await client.flow_step(flow_id, {"next_step_id": "certificate"})
    assert section_fields(form, "testing") == ["dns_server"], form
    keys = (
        "acme_directory",
        "acme_directory_url",
        "acme_ca_bundle",
        "profile",
        "certificate_path",
        "private_key_path",
    )
    terms = await client.flow_step(
        flow_id,
        {
            **suggested(form),
            **{key: values[key] for key in keys},
            "key_type": "rsa-4096",
            "testing": {"dns_server": values["dns_server"]},
        },
    )
    assert terms.get("step_id") == "terms" and not terms["errors"], terms
    created = await client.flow_step(flow_id, {"accept_terms": True})
    assert created["type"] == "create_entry", created
    entry_id: str = created["result"]["entry_id"]
    return entry_id


async def _measure(client: HassClient, data: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await client.call_service(PROBE, "measure", data)
    return answer


async def _session(
    sandbox: Sandbox, servers: dict[int, tuple[list[int], Path]]
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    async with aiohttp.ClientSession() as session:
        client = HassClient(sandbox.url, session)
        await client.onboard()
        entry_id = await _add_entry(client, sandbox)
        await client.wait_entry_loaded()
        # The first certificate (RSA 4096), also a warm-up of the account.
        await client.call_service(
            DOMAIN, "renew_certificate", {"config_entry_id": entry_id}
        )
        results["idle"] = [await _measure(client, {"what": "idle", "seconds": 3})]
        for _ in range(ROUNDS):
            results.setdefault("renewal", []).append(
                await _measure(client, {"what": "renewal", "config_entry_id": entry_id})
            )
        for latency, (ports, bundle) in servers.items():
            endpoints = [
                {"host": HOST, "port": port, "ca_bundle": str(bundle)} for port in ports
            ]
            for what in ("endpoints", "endpoints_on_loop"):
                data = {"what": what, "config_entry_id": entry_id}
                await _measure(client, {**data, "endpoints": endpoints})  # warm-up
                for _ in range(ROUNDS):
                    answer = await _measure(client, {**data, "endpoints": endpoints})
                    assert answer["failed"] == 0, answer
                    results.setdefault(f"{what}_{latency}", []).append(answer)
    return results


def run(log: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    """Boot the sandbox's ``hass`` with the probe; return each workload's rounds."""
    with tempfile.TemporaryDirectory(prefix="bench-hass-") as tmp:
        config_dir = Path(tmp) / "config"
        with Sandbox(config_dir, hass_port=_free_port()) as sandbox:
            _install_probe(sandbox)
            with (
                tls_endpoints(ENDPOINTS, LATENCIES_MS[0]) as fast,
                tls_endpoints(ENDPOINTS, LATENCIES_MS[1]) as slow,
            ):
                servers = {}
                for latency, (ports, bundle) in zip(
                    LATENCIES_MS, (fast, slow), strict=True
                ):
                    copy = config_dir / "sandbox" / f"endpoints-{latency}-ca.pem"
                    shutil.copyfile(bundle, copy)
                    servers[latency] = (ports, copy)
                log("  booting hass (sandbox) with the probe component")
                sandbox.start_hass()
                try:
                    return asyncio.run(_session(sandbox, servers))
                except BaseException:
                    log(sandbox.log_tail(3000))
                    shutil.copyfile(sandbox.log_path, "/tmp/bench-hass.log")
                    raise
