"""The protocol package stays free of Home Assistant: no module imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import custom_components.secure_remote_access.protocol as protocol_package

PROTOCOL_DIR = Path(protocol_package.__file__).parent


def _imported_modules(path: Path) -> list[str]:
    """Every module named by an ``import`` or ``from ... import`` in the file."""
    modules: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
    return modules


def _homeassistant_imports(path: Path) -> list[str]:
    return [
        module
        for module in _imported_modules(path)
        if module == "homeassistant" or module.startswith("homeassistant.")
    ]


def test_no_protocol_module_imports_homeassistant() -> None:
    """Every module below protocol/ (sub-packages included) is checked."""
    modules = sorted(PROTOCOL_DIR.rglob("*.py"))
    assert len(modules) >= 25, modules
    assert {"names.py", "dnsutil.py", "tls.py", "pairfiles.py"} <= {
        path.name for path in modules
    }
    assert any(path.parent.name == "x509" for path in modules)
    offenders = {
        str(path.relative_to(PROTOCOL_DIR)): found
        for path in modules
        if (found := _homeassistant_imports(path))
    }
    assert offenders == {}


def test_the_check_sees_both_import_forms(tmp_path: Path) -> None:
    """``import homeassistant...`` and ``from homeassistant... import`` are found."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "import homeassistant.core as ha\n"
        "from homeassistant.helpers import entity\n"
        "from homeassistant import config_entries\n"
        "from .homeassistant import nothing\n"
        "import homeassistantish\n"
        "def late():\n"
        "    import homeassistant\n",
        encoding="utf-8",
    )
    assert _homeassistant_imports(sample) == [
        "homeassistant.core",
        "homeassistant.helpers",
        "homeassistant",
        "homeassistant",
    ]
