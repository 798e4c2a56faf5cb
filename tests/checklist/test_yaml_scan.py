"""The YAML scan counts inline credentials and never returns their values."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from custom_components.secure_remote_access.checklist.yaml_scan import (
    count_inline_credentials,
    is_credential_key,
    scan_configuration,
)

SECRET = "s3cr3t-hunter2-value"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("key", "credential"),
    [
        ("password", True),
        ("Password", True),
        ("api_key", True),
        ("token", True),
        ("client_secret", True),
        ("mqtt_password", True),
        ("refresh_token", True),
        ("username", False),
        ("token_type", False),
        ("host", False),
    ],
)
def test_credential_keys(key: str, credential: bool) -> None:
    """Keys that name credentials, exactly or by suffix."""
    assert is_credential_key(key) is credential


def test_count_inline_credentials() -> None:
    """Literal values count; references, booleans, empty values and templates do not."""
    data = {
        "mqtt": {"password": SECRET, "username": "me"},
        "sensor": [
            {"platform": "x", "api_key": 12345},
            {"platform": "y", "token": "   "},
            {"platform": "z", "token": True},
            {"platform": "t", "token": "{{ states('input_text.t') }}"},
            {"platform": "n", "password": None},
        ],
        "nested": {"secret": {"password": SECRET}},
    }
    assert count_inline_credentials(data) == 3
    assert count_inline_credentials("scalar") == 0


def test_anchor_bomb_is_counted_once() -> None:
    """Shared nodes (YAML aliases) are walked once."""
    shared = {"password": SECRET}
    level = [shared] * 10
    for _ in range(30):
        level = [level] * 10
    assert count_inline_credentials({"a": level}) == 1


def test_scan_follows_includes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """!include and !include_dir_* files are scanned; !secret and secrets.yaml are not."""
    caplog.set_level(logging.DEBUG)
    config = _write(
        tmp_path / "configuration.yaml",
        "homeassistant:\n  name: Home\n"
        "mqtt: !include mqtt.yaml\n"
        "notify:\n  - platform: x\n    api_key: !secret notify_key\n"
        "  - platform: y\n    password: !env_var PASSWORD\n"
        "homeassistant_packages: !include_dir_named packages\n"
        "scripts: !include_dir_merge_list scripts\n"
        "secrets: !include secrets.yaml\n"
        "self: !include configuration.yaml\n"
        "missing: !include missing.yaml\n"
        "custom: !custom_tag value\n"
        "list_include: !include [a, b]\n",
    )
    _write(tmp_path / "mqtt.yaml", f"broker: 192.168.1.2\npassword: {SECRET}\n")
    _write(tmp_path / "packages" / "cam.yaml", f"camera:\n  - token: {SECRET}\n")
    _write(tmp_path / "packages" / ".hidden" / "x.yaml", f"token: {SECRET}\n")
    _write(tmp_path / "packages" / "broken.yaml", f"password: [{SECRET}\n")
    _write(tmp_path / "scripts" / "a.yaml", "- alias: a\n")
    _write(tmp_path / "secrets.yaml", f"notify_key: {SECRET}\n")
    scan = scan_configuration(config)
    assert scan.inline == 2
    assert scan.files == ("mqtt.yaml", "packages/cam.yaml")
    assert scan.scanned_files == 4
    assert SECRET not in caplog.text
    assert "packages/broken.yaml" in caplog.text


def test_scan_without_configuration(tmp_path: Path) -> None:
    """No configuration.yaml: nothing to count."""
    scan = scan_configuration(tmp_path / "configuration.yaml")
    assert scan.inline == 0
    assert scan.scanned_files == 0


def test_scan_outside_config_dir(tmp_path: Path) -> None:
    """Files included from outside the configuration folder show their name only."""
    _write(tmp_path / "shared" / "creds.yaml", f"password: {SECRET}\n")
    config = _write(
        tmp_path / "config" / "configuration.yaml", "x: !include ../shared/creds.yaml\n"
    )
    scan = scan_configuration(config)
    assert scan.files == ("creds.yaml",)


def test_scan_survives_loops_and_missing_folders(tmp_path: Path) -> None:
    """Symlink loops, missing include folders and huge files are skipped."""
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    config = _write(
        tmp_path / "configuration.yaml",
        "a: !include a.yaml\nb: !include_dir_named nowhere\nc: !include big.yaml\n",
    )
    _write(tmp_path / "big.yaml", "password: x\n" + "#" * (5 * 1024 * 1024))
    scan = scan_configuration(config)
    assert scan.inline == 0
    assert scan.scanned_files == 1
