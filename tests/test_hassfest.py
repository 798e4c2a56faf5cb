"""Offline stand-ins for what hassfest and the HACS action check on GitHub."""

from __future__ import annotations

import ast
from collections.abc import Iterator
import inspect
import json
from pathlib import Path
import re
import subprocess
from typing import Any

import homeassistant.components
import pytest
import yaml

from custom_components import secure_remote_access
from custom_components.secure_remote_access import issues
from custom_components.secure_remote_access.checklist.checks import CHECK_IDS
from custom_components.secure_remote_access.protocol.remote_access import Finding

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "custom_components" / "secure_remote_access"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _strings() -> dict[str, Any]:
    return _json(PACKAGE / "translations" / "en.json")  # type: ignore[no-any-return]


def test_manifest() -> None:
    """Keys are domain, name, then alphabetical; values are what HACS needs."""
    manifest = _json(PACKAGE / "manifest.json")
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert manifest["domain"] == "secure_remote_access"
    assert manifest["name"] == "Secure Remote Access"
    assert manifest["config_flow"] is True
    assert manifest["iot_class"] == "cloud_polling"
    assert manifest["integration_type"] == "service"
    # The one requirement is the UPnP client, as a floor that Home Assistant's
    # own ssdp pin satisfies: an exact pin would fight Home Assistant's the
    # day it moves (its constraints file decides the version).
    ssdp = json.loads(
        (
            Path(homeassistant.components.__file__).parent / "ssdp" / "manifest.json"
        ).read_text(encoding="utf-8")
    )
    upnp_client = next(
        r for r in ssdp["requirements"] if r.startswith("async-upnp-client==")
    )
    pinned = upnp_client.removeprefix("async-upnp-client==")
    (requirement,) = manifest["requirements"]
    assert requirement.startswith("async-upnp-client>=")
    floor = requirement.removeprefix("async-upnp-client>=")
    assert tuple(map(int, floor.split("."))) <= tuple(map(int, pinned.split(".")))
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert manifest["codeowners"]
    assert all(owner.startswith("@") for owner in manifest["codeowners"])
    for key in ("documentation", "issue_tracker"):
        assert manifest[key].startswith("https://")
    assert manifest["loggers"]
    allowed = {
        "domain", "name", "after_dependencies", "codeowners", "config_flow",
        "dependencies", "documentation", "integration_type", "iot_class",
        "issue_tracker", "loggers", "quality_scale", "requirements", "version",
    }  # fmt: skip
    assert set(keys) <= allowed
    assert manifest.get("quality_scale") in (
        None,
        "platinum",
        "gold",
        "silver",
        "bronze",
    )


def test_version_matches_pyproject() -> None:
    """One version number for the package and the manifest."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert match
    assert _json(PACKAGE / "manifest.json")["version"] == match.group(1)


def test_hacs_json() -> None:
    """hacs.json follows the HACS schema for integrations."""
    hacs = _json(ROOT / "hacs.json")
    allowed = {
        "name", "content_in_root", "zip_release", "filename", "hide_default_branch",
        "country", "homeassistant", "hacs", "persistent_directory", "render_readme",
    }  # fmt: skip
    assert set(hacs) <= allowed
    assert hacs["name"] == "Secure Remote Access"
    assert re.fullmatch(r"20\d\d\.\d+\.\d+", hacs["homeassistant"])
    if hacs.get("zip_release"):
        assert hacs["filename"].endswith(".zip")
    assert (ROOT / "LICENSE").is_file()
    assert (ROOT / "README.md").is_file()


def test_brand_images() -> None:
    """Icon and logo sit in the integration's brand folder as PNG files."""
    for name in ("icon.png", "logo.png"):
        data = (PACKAGE / "brand" / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")


def test_config_schema_defined() -> None:
    """The integration declares that it is set up from the UI only."""
    assert callable(secure_remote_access.CONFIG_SCHEMA)


def test_no_manifest_under_tests() -> None:
    """A manifest.json under tests/ would be picked up as an integration."""
    assert not list((ROOT / "tests").rglob("manifest.json"))


def _tracked_manifests() -> list[Path]:
    """The manifests the hassfest Action validates: **/manifest.json of a checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "--", "manifest.json", "**/manifest.json"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [
        ROOT / name
        for name in listed
        if not any(part.startswith(".") for part in Path(name).parts)
    ]


def test_every_manifest_is_a_valid_integration_folder() -> None:
    """hassfest: the domain is the folder's name; actions are described."""
    manifests = _tracked_manifests()
    assert PACKAGE / "manifest.json" in manifests
    for path in manifests:
        folder = path.parent
        assert _json(path)["domain"] == folder.name, path
        source = (folder / "__init__.py").read_text(encoding="utf-8")
        if "async_register(" in source:
            assert (folder / "services.yaml").is_file(), folder
        if "def async_setup(" in source:
            assert "CONFIG_SCHEMA" in source, folder


def test_lint_runs_hassfest_and_the_hacs_checks() -> None:
    """A regression fails scripts/lint (CI); GitHub runs the official actions."""
    lint = (ROOT / "scripts" / "lint").read_text(encoding="utf-8")
    assert '"$TOOLS/hassfest/run"' in lint
    assert '"$TOOLS/hacs-check/check_hacs_local.py" .' in lint
    assert "SRA_SHARED_TOOLS" in lint
    validate = yaml.safe_load(
        (ROOT / ".github" / "workflows" / "validate.yaml").read_text(encoding="utf-8")
    )
    steps = [step for job in validate["jobs"].values() for step in job["steps"]]
    uses = {step.get("uses", "").split("@")[0]: step for step in steps}
    assert "home-assistant/actions/hassfest" in uses
    assert uses["hacs/action"]["with"]["category"] == "integration"


def _walk_values(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk_values(value, f"{path}.{key}" if path else key)
    else:
        yield path, node


def test_translations_have_no_urls_and_are_strings() -> None:
    """Home Assistant rejects URLs in translations: they go in placeholders."""
    for path, value in _walk_values(_strings()):
        assert isinstance(value, str), path
        assert value.strip(), path
        assert "http://" not in value, path
        assert "https://" not in value, path


def _code_translation_keys() -> dict[str, set[str]]:
    """Collect translation keys the Python code uses, by category."""
    found: dict[str, set[str]] = {
        "error": set(),
        "abort": set(),
        "step": set(),
        "exceptions": set(),
        "issues": set(),
        "entity": set(),
        "selector": set(),
    }
    for source in PACKAGE.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if (
                        isinstance(target, ast.Subscript)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "errors"
                        and isinstance(node.value.value, str)
                    ):
                        found["error"].add(node.value.value)
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else getattr(func, "id", "")
            )
            if (
                name == "fail"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                found["error"].add(node.args[1].value)  # CertificateCheck.fail
            for keyword in node.keywords:
                if not isinstance(keyword.value, ast.Constant) or not isinstance(
                    keyword.value.value, str
                ):
                    continue
                value = keyword.value.value
                if keyword.arg == "reason" and name in (
                    "async_abort",
                    "async_update_reload_and_abort",
                ):
                    found["abort"].add(value)
                elif keyword.arg == "step_id":
                    found["step"].add(value)
                elif keyword.arg == "translation_key":
                    if name == "async_create_issue":
                        found["issues"].add(value)
                    elif name == "SelectSelectorConfig":
                        found["selector"].add(value)
                    elif name.endswith("Description"):
                        found["entity"].add(value)
                    else:
                        found["exceptions"].add(value)
    return found


def test_every_translation_key_used_in_code_has_text() -> None:
    """A key the code uses without an English text fails here, not in the UI."""
    strings = _strings()
    flows = [strings.get("config", {}), strings.get("options", {})]
    # Repairs fix flows keep their steps and aborts under issues.<key>.fix_flow.
    flows.extend(
        issue["fix_flow"]
        for issue in strings.get("issues", {}).values()
        if "fix_flow" in issue
    )
    used = _code_translation_keys()
    missing: list[str] = []
    for category in ("error", "abort", "step"):
        missing.extend(
            f"{category}.{key}"
            for key in used[category]
            if not any(key in flow.get(category, {}) for flow in flows)
        )
    missing.extend(
        f"exceptions.{key}"
        for key in used["exceptions"]
        if "message" not in strings.get("exceptions", {}).get(key, {})
    )
    missing.extend(
        f"issues.{key}"
        for key in used["issues"]
        if "title" not in strings.get("issues", {}).get(key, {})
    )
    missing.extend(
        f"selector.{key}"
        for key in used["selector"]
        if not strings.get("selector", {}).get(key, {}).get("options")
    )
    entities = strings.get("entity", {})
    missing.extend(
        f"entity.*.{key}"
        for key in used["entity"]
        if not any(key in platform for platform in entities.values())
    )
    assert not missing
    assert used["step"], "the scan found no flow steps: the scanner is broken"
    assert used["error"], "the scan found no form errors: the scanner is broken"


def test_issue_translations_follow_home_assistants_schema() -> None:
    """hassfest's rule: an issue has a title and a description OR a fix flow.

    With a fix flow the frontend opens the flow when the issue is clicked and
    shows only the flow's step texts: each step has a title and a description.
    """
    for key, issue in _strings()["issues"].items():
        assert issue["title"], key
        assert ("description" in issue) != ("fix_flow" in issue), key
        for step_id, step in issue.get("fix_flow", {}).get("step", {}).items():
            assert step.get("title"), (key, step_id)
            assert step.get("description"), (key, step_id)


def test_every_issue_kind_has_its_text() -> None:
    """Each kind the code raises (issues.py, the checklist, the remote-access
    findings, the https variants) has a translation, and no text is orphaned."""
    kinds = {
        getattr(issues, name)
        for name, annotation in inspect.get_annotations(issues).items()
        if annotation == "Final"  # the kinds: its Final constants
    }
    kinds |= set(CHECK_IDS) | {finding.value for finding in Finding}
    # https_trial.py derives variants of its two kinds from their constants.
    https = (PACKAGE / "https_trial.py").read_text(encoding="utf-8")
    for constant, value in (
        ("HTTPS_TRIAL", "https_trial"),
        ("HTTPS_REVERTED", "https_reverted"),
    ):
        kinds |= {
            f"{value}_{suffix}"
            for suffix in re.findall(r'f"\{' + constant + r'\}_(\w+)"', https)
        }
    texts = set(_strings()["issues"])
    assert kinds - texts == set()
    assert texts - kinds == set()


def test_no_plural_guesses() -> None:
    """No "account(s)": texts are worded so that one and many read right."""
    for path, value in _walk_values(_strings()):
        assert "(s)" not in value, path


def test_placeholders_in_texts_are_balanced() -> None:
    """Every {placeholder} opens and closes."""
    for path, value in _walk_values(_strings()):
        assert value.count("{") == value.count("}"), path


def _services() -> dict[str, Any]:
    path = PACKAGE / "services.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def test_services_described() -> None:
    """Each action in services.yaml has a translated name, description and fields."""
    strings = _strings().get("services", {})
    for service, spec in _services().items():
        assert service in strings, service
        assert strings[service]["name"]
        assert strings[service]["description"]
        for field in (spec or {}).get("fields", {}):
            assert strings[service]["fields"][field]["name"], (service, field)
            assert strings[service]["fields"][field]["description"], (service, field)


@pytest.mark.parametrize("name", ["icons.json"])
def test_icons_cover_services(name: str) -> None:
    """Every action has an icon when icons.json exists."""
    path = PACKAGE / name
    if not path.exists():
        assert not _services()
        return
    icons = _json(path)
    for service in _services():
        assert service in icons.get("services", {}), service


RULES = {
    "bronze": (
        "action-setup appropriate-polling brands common-modules config-flow "
        "config-flow-test-coverage dependency-transparency docs-actions "
        "docs-high-level-description docs-installation-instructions "
        "docs-removal-instructions entity-event-setup entity-unique-id "
        "has-entity-name runtime-data test-before-configure test-before-setup "
        "unique-config-entry"
    ),
    "silver": (
        "action-exceptions config-entry-unloading docs-configuration-parameters "
        "docs-installation-parameters entity-unavailable integration-owner "
        "log-when-unavailable parallel-updates reauthentication-flow test-coverage"
    ),
    "gold": (
        "devices diagnostics discovery discovery-update-info docs-data-update "
        "docs-examples docs-known-limitations docs-supported-devices "
        "docs-supported-functions docs-troubleshooting docs-use-cases "
        "dynamic-devices entity-category entity-device-class "
        "entity-disabled-by-default entity-translations exception-translations "
        "icon-translations reconfiguration-flow repair-issues stale-devices"
    ),
    "platinum": "async-dependency inject-websession strict-typing",
}


def test_quality_scale_is_complete_and_honest() -> None:
    """Every rule up to the claimed tier is done, or exempt with a reason."""
    rules = yaml.safe_load(
        (PACKAGE / "quality_scale.yaml").read_text(encoding="utf-8")
    )["rules"]
    claimed = _json(PACKAGE / "manifest.json").get("quality_scale")
    tiers = list(RULES)
    assert claimed in tiers
    for tier in tiers[: tiers.index(claimed) + 1]:
        for rule in RULES[tier].split():
            assert rule in rules, rule
            value = rules[rule]
            status = value if isinstance(value, str) else value["status"]
            assert status in ("done", "exempt"), rule
            if status == "exempt":
                assert value["comment"].strip(), rule


def test_platforms_limit_parallel_updates() -> None:
    """parallel-updates: every entity platform declares PARALLEL_UPDATES."""
    for platform in ("sensor", "binary_sensor"):
        source = (PACKAGE / f"{platform}.py").read_text(encoding="utf-8")
        assert "PARALLEL_UPDATES = 0" in source, platform


def test_release_zip_matches_hacs_json() -> None:
    """The release workflow attaches the file hacs.json tells HACS to download."""
    hacs = _json(ROOT / "hacs.json")
    workflow = (ROOT / ".github" / "workflows" / "release.yaml").read_text(
        encoding="utf-8"
    )
    assert hacs["zip_release"] is True
    assert hacs["filename"] in workflow
    assert "custom_components/secure_remote_access" in workflow


def test_matrix_covers_the_oldest_claimed_version() -> None:
    """The oldest Home Assistant hacs.json claims has a pin and a CI job."""
    oldest = _json(ROOT / "hacs.json")["homeassistant"]
    assert (ROOT / "requirements_matrix" / f"{oldest}.txt").is_file()
    workflow = (ROOT / ".github" / "workflows" / "tests.yaml").read_text(
        encoding="utf-8"
    )
    assert f'"{oldest}"' in workflow
