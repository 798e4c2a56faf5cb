"""Every Repairs issue and flow screen the code shows has its English text.

Home Assistant's frontend renders an issue from ``issues.<key>``: the title,
and the description when the issue is not fixable; a fixable issue opens its
fix flow at once, which shows ``issues.<key>.fix_flow.step.<step>`` (hassfest
forbids a description beside a fix flow). ``check_translations`` watches the
issue registry and every flow of the integration while a test runs, as Home
Assistant's own test suite does for core integrations, and reports each
screen a user would see with a missing text or an unfilled placeholder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
import json
from pathlib import Path
import re
from typing import Any
from unittest.mock import patch

from homeassistant.components.repairs import RepairsFlowManager
from homeassistant.config_entries import ConfigEntriesFlowManager, OptionsFlowManager
from homeassistant.data_entry_flow import (
    FlowHandler,
    FlowManager,
    FlowResult,
    FlowResultType,
    section,
)
from homeassistant.helpers import issue_registry as ir

from custom_components.secure_remote_access.const import DOMAIN

STRINGS_PATH = (
    Path(__file__).parent.parent
    / "custom_components"
    / DOMAIN
    / "translations"
    / "en.json"
)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@cache
def strings() -> dict[str, Any]:
    """The integration's English texts (read once per test session)."""
    return json.loads(STRINGS_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def placeholders_in(text: str) -> set[str]:
    """The ``{name}`` placeholders of one text."""
    return set(_PLACEHOLDER.findall(text))


def _text_problems(
    texts: Mapping[str, Any], path: str, keys: tuple[str, ...], given: Mapping[str, Any]
) -> list[str]:
    """Missing texts among ``keys`` of ``texts``, and placeholders nobody fills."""
    problems = []
    for key in keys:
        text = texts.get(key)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{path}.{key}: no text")
            continue
        if missing := placeholders_in(text) - set(given):
            problems.append(f"{path}.{key}: placeholders not given: {sorted(missing)}")
    return problems


def issue_placeholders(translation_key: str) -> dict[str, str]:
    """Every placeholder the texts of an issue (and its fix flow) use, named after itself."""
    names: set[str] = set()
    stack: list[Any] = [strings()["issues"][translation_key]]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        else:
            names |= placeholders_in(node)
    return {name: name for name in names}


def issue_problems(
    translation_key: str, *, is_fixable: bool, placeholders: Mapping[str, Any]
) -> list[str]:
    """What is wrong with the texts of one issue as the registry holds it."""
    path = f"issues.{translation_key}"
    issue = strings().get("issues", {}).get(translation_key)
    if issue is None:
        return [f"{path}: no translation"]
    problems = _text_problems(issue, path, ("title",), placeholders)
    if is_fixable:
        if "description" in issue:
            problems.append(f"{path}: fixable, so fix_flow only (no description)")
        if "fix_flow" not in issue:
            problems.append(f"{path}: fixable without a fix_flow")
    else:
        if "fix_flow" in issue:
            problems.append(f"{path}: not fixable, yet it has a fix_flow")
        problems += _text_problems(issue, path, ("description",), placeholders)
    return problems


def _schema_problems(
    texts: Mapping[str, Any], path: str, schema: Any, given: Mapping[str, Any]
) -> list[str]:
    """Every field of a form (and of its sections) has a label."""
    problems = []
    for marker, value in getattr(schema, "schema", {}).items():
        key = str(marker)
        if isinstance(value, section):
            section_texts = texts.get("sections", {}).get(key, {})
            problems += _text_problems(
                section_texts, f"{path}.sections.{key}", ("name",), given
            )
            problems += _schema_problems(
                section_texts, f"{path}.sections.{key}", value.schema, given
            )
        else:
            problems += _text_problems(
                texts.get("data", {}), f"{path}.data", (key,), given
            )
    return problems


def flow_problems(
    flow_texts: Mapping[str, Any] | None,
    path: str,
    result: FlowResult[Any, Any],
    given: Mapping[str, Any],
    *,
    step_keys: tuple[str, ...],
) -> list[str]:
    """What is wrong with the texts of the screen a flow step shows."""
    if flow_texts is None:
        return [f"{path}: no translation"]
    kind = result["type"]
    if kind is FlowResultType.FORM:
        step_id = result["step_id"]
        step_path = f"{path}.step.{step_id}"
        step = flow_texts.get("step", {}).get(step_id)
        if step is None:
            return [f"{step_path}: no translation"]
        problems = _text_problems(step, step_path, step_keys, given)
        problems += _schema_problems(step, step_path, result["data_schema"], given)
        for error in (result.get("errors") or {}).values():
            problems += _text_problems(
                flow_texts.get("error", {}), f"{path}.error", (error,), given
            )
        return problems
    if kind is FlowResultType.MENU:
        step_id = result["step_id"]
        step_path = f"{path}.step.{step_id}"
        step = flow_texts.get("step", {}).get(step_id, {})
        return _text_problems(
            step.get("menu_options", {}),
            f"{step_path}.menu_options",
            tuple(result["menu_options"]),
            given,
        )
    if kind is FlowResultType.ABORT:
        return _text_problems(
            flow_texts.get("abort", {}), f"{path}.abort", (result["reason"],), given
        )
    return []


def _flow_screen_problems(
    manager: FlowManager[Any, Any, Any],
    flow: FlowHandler[Any, Any, Any],
    result: FlowResult[Any, Any],
) -> list[str]:
    """Check the screen of one of our flows; other integrations' flows pass."""
    given: dict[str, Any] = dict(result.get("description_placeholders") or {})
    texts = strings()
    if isinstance(manager, RepairsFlowManager):
        if flow.handler != DOMAIN:
            return []
        issue = ir.async_get(flow.hass).async_get_issue(DOMAIN, flow.issue_id)  # type: ignore[attr-defined]
        if issue is None or issue.translation_key is None:
            return []  # deleted while the flow ran
        # The frontend fills a fix flow's texts with the issue's placeholders
        # too; the flow's own take precedence.
        given = {**(issue.translation_placeholders or {}), **given}
        path = f"issues.{issue.translation_key}.fix_flow"
        flow_texts = texts.get("issues", {}).get(issue.translation_key, {})
        return flow_problems(
            flow_texts.get("fix_flow"),
            path,
            result,
            given,
            step_keys=("title", "description"),
        )
    if isinstance(manager, ConfigEntriesFlowManager):
        if flow.handler != DOMAIN:
            return []
        category = "config"
    elif isinstance(manager, OptionsFlowManager):
        entry = flow.hass.config_entries.async_get_entry(flow.handler)
        if entry is None or entry.domain != DOMAIN:
            return []
        category = "options"
    else:
        return []
    return flow_problems(texts.get(category), category, result, given, step_keys=())


@contextmanager
def check_translations() -> Iterator[list[str]]:
    """Collect the problems of every issue created and flow screen shown meanwhile."""
    problems: list[str] = []
    strings()  # read here, never in the event loop
    create_issue = ir.IssueRegistry.async_get_or_create
    handle_step = FlowManager._async_handle_step

    def checked_create_issue(
        registry: ir.IssueRegistry, domain: str, issue_id: str, **kwargs: Any
    ) -> ir.IssueEntry:
        issue = create_issue(registry, domain, issue_id, **kwargs)
        if domain == DOMAIN:
            problems.extend(
                f"issue {issue_id}: {problem}"
                for problem in issue_problems(
                    kwargs["translation_key"],
                    is_fixable=kwargs["is_fixable"],
                    placeholders=kwargs.get("translation_placeholders") or {},
                )
            )
        return issue

    async def checked_handle_step(
        manager: FlowManager[Any, Any, Any],
        flow: FlowHandler[Any, Any, Any],
        step_id: str,
        user_input: Any,
    ) -> FlowResult[Any, Any]:
        result = await handle_step(manager, flow, step_id, user_input)
        problems.extend(
            f"flow {flow.handler} step {step_id}: {problem}"
            for problem in _flow_screen_problems(manager, flow, result)
        )
        return result

    with (
        patch.object(ir.IssueRegistry, "async_get_or_create", checked_create_issue),
        patch.object(FlowManager, "_async_handle_step", checked_handle_step),
    ):
        yield problems
