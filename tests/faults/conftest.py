"""Fixtures of the fault suites: the summary lines the year prints."""

from __future__ import annotations

from collections.abc import Generator

import pytest

SUMMARIES: list[str] = []


@pytest.fixture
def year_summaries() -> list[str]:
    """Where each simulated year leaves its one-line summary."""
    return SUMMARIES


@pytest.fixture
def disable_http_server() -> Generator[None]:
    """These suites run Home Assistant's real web server."""
    yield


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print one line per simulated year after the run."""
    if SUMMARIES:
        terminalreporter.section("a year of faults")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
