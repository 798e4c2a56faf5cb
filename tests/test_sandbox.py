"""The sandbox keeps what Home Assistant wrote to its HTTP settings (``--keep``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.fakes.sandbox import Sandbox, http_storage


def _stored(config_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((config_dir / ".storage" / "http").read_text())
    return data


def test_http_settings_of_home_assistant_are_kept(tmp_path: Path) -> None:
    """Written on the first run, rewritten while unchanged, never once Home Assistant wrote it."""
    config = tmp_path / "config"
    first = Sandbox(config, hass_port=18123)
    first._write_http_storage()
    assert _stored(config)["data"]["stable"]["server_port"] == 18123
    assert not first.serves_https()

    # Still what the sandbox wrote: another --port rewrites it.
    moved = Sandbox(config, hass_port=18124)
    moved._write_http_storage()
    assert _stored(config)["data"]["stable"]["server_port"] == 18124
    assert not moved.http_note

    # Home Assistant wrote a pending change (serving HTTPS) before it restarted.
    stored = _stored(config)
    stored["data"]["pending"] = {
        **stored["data"]["stable"],
        "ssl_certificate": "/config/ssl/fullchain.pem",
        "ssl_key": "/config/ssl/privkey.pem",
        "created_at": "2026-12-07T10:00:00+00:00",
    }
    (config / ".storage" / "http").write_text(json.dumps(stored))
    kept = Sandbox(config, hass_port=18200)
    kept._write_http_storage()
    assert _stored(config) == stored
    assert kept.hass_port == 18124
    assert "kept" in kept.http_note
    assert kept.serves_https()
    assert kept.address == "https://myhome.duckdns.org:18124"

    # A change that failed its trial is not tried again: plain HTTP then.
    stored["data"]["pending"]["error"] = "not_promoted"
    (config / ".storage" / "http").write_text(json.dumps(stored))
    assert not kept.serves_https()
    assert kept.address == "http://127.0.0.1:18124"


def test_a_storage_file_without_the_sandboxs_copy_is_kept(tmp_path: Path) -> None:
    """A configuration directory of an older sandbox (or another tool): left alone."""
    config = tmp_path / "config"
    (config / ".storage").mkdir(parents=True)
    theirs = http_storage(18300)
    (config / ".storage" / "http").write_text(json.dumps(theirs))
    sandbox = Sandbox(config, hass_port=18123)
    sandbox._write_http_storage()
    assert _stored(config) == theirs
    assert sandbox.hass_port == 18300
