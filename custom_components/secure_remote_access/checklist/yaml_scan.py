"""Count credentials written inline in Home Assistant's YAML configuration.

Pure and blocking (run it in the executor); no Home Assistant imports.
``configuration.yaml`` and every file it pulls in with ``!include`` or the
``!include_dir_*`` tags are read with a safe loader that never resolves
``!secret``. A mapping key that names a credential (``password``, ``token``,
``api_key``, ``client_secret``, ...) with a literal value counts once. Values
are never returned, logged or kept: only the count and the file names.
"""

from __future__ import annotations

from collections.abc import Iterator
import logging
from pathlib import Path
from typing import Any, Final

# PyYAML has no inline types and the project's environment has no stubs for it.
import yaml  # type: ignore[import-untyped]

from .models import SecretsScan

_LOGGER = logging.getLogger(__name__)

CREDENTIAL_KEYS: Final = frozenset(
    {
        "access_token",
        "api_key",
        "api_password",
        "api_secret",
        "api_token",
        "apikey",
        "auth_token",
        "client_secret",
        "passwd",
        "password",
        "private_key",
        "secret",
        "secret_key",
        "token",
    }
)
CREDENTIAL_SUFFIXES: Final = ("_password", "_token", "_api_key", "_apikey", "_secret")
INCLUDE_DIR_TAGS: Final = (
    "!include_dir_list",
    "!include_dir_named",
    "!include_dir_merge_list",
    "!include_dir_merge_named",
)
REFERENCE_TAGS: Final = ("!secret", "!env_var", "!input")
SECRETS_FILE: Final = "secrets.yaml"
MAX_FILES: Final = 500
MAX_FILE_SIZE: Final = 4 * 1024 * 1024


class _Reference:
    """A value the YAML points at (``!secret``, ``!include``...), never a literal."""


REFERENCE: Final = _Reference()


def is_credential_key(key: str) -> bool:
    """True for a mapping key that names a credential."""
    key = key.lower()
    return key in CREDENTIAL_KEYS or key.endswith(CREDENTIAL_SUFFIXES)


def _is_literal(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        text = value.strip()
        return bool(text) and "{{" not in text and "{%" not in text
    return False


def count_inline_credentials(data: Any) -> int:
    """Count credential keys with literal values anywhere in loaded YAML data.

    Iterative and alias-aware: a node shared through YAML anchors counts once,
    so "billion laughs" documents cannot make the walk explode.
    """
    count = 0
    seen: set[int] = set()
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict | list) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, list):
            stack.extend(node)
            continue
        for key, value in node.items():
            if isinstance(key, str) and is_credential_key(key) and _is_literal(value):
                count += 1
            else:
                stack.append(value)
    return count


def _yaml_files(directory: Path) -> Iterator[Path]:
    """The YAML files of an !include_dir_* directory, as Home Assistant reads them."""
    if not directory.is_dir():
        return
    for path in sorted(directory.rglob("*.yaml")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.name != SECRETS_FILE:
            yield path


def _loader_for(base_dir: Path, found: list[Path]) -> type[yaml.SafeLoader]:
    """A safe loader that records includes instead of following them."""

    class ScanLoader(yaml.SafeLoader):  # type: ignore[misc]
        """Safe loader with Home Assistant's tags reduced to references."""

    def include(loader: yaml.SafeLoader, node: yaml.Node) -> _Reference:
        if isinstance(node, yaml.ScalarNode):
            found.append(base_dir / str(loader.construct_scalar(node)))
        return REFERENCE

    def include_dir(loader: yaml.SafeLoader, node: yaml.Node) -> _Reference:
        if isinstance(node, yaml.ScalarNode):
            found.extend(_yaml_files(base_dir / str(loader.construct_scalar(node))))
        return REFERENCE

    def reference(loader: yaml.SafeLoader, *args: Any) -> _Reference:
        return REFERENCE

    ScanLoader.add_constructor("!include", include)
    for tag in INCLUDE_DIR_TAGS:
        ScanLoader.add_constructor(tag, include_dir)
    for tag in REFERENCE_TAGS:
        ScanLoader.add_constructor(tag, reference)
    ScanLoader.add_multi_constructor("!", reference)
    return ScanLoader


def _display_name(path: Path, config_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(config_dir.resolve()))
    except OSError, ValueError:
        return path.name


def scan_configuration(config_file: Path) -> SecretsScan:
    """Scan ``configuration.yaml`` and its includes; counts and file names only."""
    config_dir = config_file.parent
    queue: list[Path] = [config_file]
    visited: set[Path] = set()
    inline = 0
    scanned = 0
    files: list[str] = []
    while queue and len(visited) < MAX_FILES:
        path = queue.pop(0)
        resolved = path.resolve()
        if resolved in visited or path.name == SECRETS_FILE:
            continue
        visited.add(resolved)
        found: list[Path] = []
        try:
            if not path.is_file() or path.stat().st_size > MAX_FILE_SIZE:
                continue
            with path.open(encoding="utf-8") as stream:
                data = yaml.load(stream, Loader=_loader_for(path.parent, found))  # noqa: S506
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as err:
            # The error text can quote the line, and the line can hold a secret.
            _LOGGER.debug(
                "Skipping %s in the secrets scan: %s",
                _display_name(path, config_dir),
                type(err).__name__,
            )
            continue
        scanned += 1
        queue.extend(found)
        if count := count_inline_credentials(data):
            inline += count
            files.append(_display_name(path, config_dir))
    return SecretsScan(inline=inline, files=tuple(files), scanned_files=scanned)
