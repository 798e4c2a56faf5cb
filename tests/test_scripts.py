"""The contributor commands the README lists say what they do."""

from __future__ import annotations

from pathlib import Path
import subprocess

import pytest

ROOT = Path(__file__).parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "develop"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_develop_help_is_its_own(flag: str) -> None:
    """scripts/develop --help explains both modes (it printed hass's help)."""
    done = _run(flag)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: scripts/develop [HASS OPTIONS]")
    assert "scripts/develop --sandbox" in done.stdout
    assert "usage: hass" not in done.stdout


def test_develop_sandbox_help() -> None:
    """The sandbox's own options, each explained."""
    done = _run("--sandbox", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: scripts/develop --sandbox")
    for option in ("--config DIR", "--port PORT", "--base-port", "--keep"):
        assert option in done.stdout, option
    assert "Pebble" in done.stdout
