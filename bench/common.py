"""Helpers shared by the benchmark sections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import os
from pathlib import Path
import statistics
import subprocess
import tempfile
import time

TIME = "/usr/bin/time"
ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(
    os.environ.get("SRA_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "secure-remote-access"
)


@dataclass(frozen=True)
class ProcessRun:
    """One finished child process: wall time, CPU time, peak RSS, output."""

    wall: float
    cpu: float
    max_rss_kib: int
    returncode: int
    stdout: str
    stderr: str


def run_process(
    argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 120
) -> ProcessRun:
    """Run ``argv`` under GNU time: wall time here, CPU time and peak RSS from time.

    GNU time forks the command from a small process, so the peak RSS is the
    command's own (hooks it runs included in CPU time), not this interpreter's.
    """
    with tempfile.NamedTemporaryFile(mode="r", suffix=".time") as usage:
        start = time.perf_counter()
        proc = subprocess.run(
            [TIME, "-f", "%U %S %M", "-o", usage.name, *argv],
            env=env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            timeout=timeout,
            check=False,
        )
        wall = time.perf_counter() - start
        fields = usage.read().split()[-3:]
    user, system, rss = fields if len(fields) == 3 else ("0", "0", "0")
    return ProcessRun(
        wall=wall,
        cpu=float(user) + float(system),
        max_rss_kib=int(rss),
        returncode=proc.returncode,
        stdout=proc.stdout.decode(errors="replace"),
        stderr=proc.stderr.decode(errors="replace"),
    )


def fmt_s(seconds: float) -> str:
    """Seconds with a sensible precision."""
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def median(values: Sequence[float]) -> float:
    """The median (0 for no values)."""
    return statistics.median(values) if values else 0.0


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)
