"""Section 1: issuance latency, ours vs certbot vs lego, against one local Pebble."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tempfile

from tests.fakes.pebble import PebbleServer

from .common import CACHE, ROOT, ProcessRun, fmt_s, median, run_process, table

NAMES = ("bench.duckdns.org",)
HOOKS = ROOT / "bench" / "hooks"
_REQUEST = re.compile(
    r"^Pebble \S+ \S+ (GET|HEAD|POST) (\S+) -> calling handler", re.MULTILINE
)


def certbot_binary() -> Path:
    """certbot in its own venv under the cache directory (see scripts/bench)."""
    return CACHE / "certbot-venv" / "bin" / "certbot"


def tool_versions() -> dict[str, str]:
    """Versions of certbot, lego and Pebble for the machine description."""
    versions = {}
    try:
        out = subprocess.run(
            [str(certbot_binary()), "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
        versions["certbot"] = (out.stdout or out.stderr).strip()
    except OSError:
        versions["certbot"] = "not installed"
    lego = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "lego"],
        capture_output=True,
        text=True,
        check=False,
    )
    versions["lego"] = f"lego {lego.stdout.strip() or 'not installed'} (Debian package)"
    pebble_version = CACHE / "pebble" / ".version"
    versions["pebble"] = (
        f"Pebble {pebble_version.read_text().strip()} (Debian package)"
        if pebble_version.exists()
        else "Pebble (unknown version)"
    )
    return versions


@dataclass
class ClientResult:
    """All runs of one client."""

    label: str
    runs: list[ProcessRun] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    in_process: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _ours(
    pebble: PebbleServer, workdir: Path, env: dict[str, str], poll: str
) -> list[str]:
    del workdir
    env["BENCH_POLL_INTERVAL"] = poll
    return [
        sys.executable,
        str(ROOT / "bench" / "ours_issue.py"),
        pebble.directory_url,
        str(pebble.ca_bundle_path),
        pebble.challtestsrv_url,
        pebble.dns_server,
        "ec-p256",
        *NAMES,
    ]


def _certbot(pebble: PebbleServer, workdir: Path, env: dict[str, str]) -> list[str]:
    env["REQUESTS_CA_BUNDLE"] = str(pebble.ca_bundle_path)
    return [
        str(certbot_binary()),
        "certonly",
        "--manual",
        "--preferred-challenges",
        "dns",
        "--manual-auth-hook",
        str(HOOKS / "certbot-auth.sh"),
        "--manual-cleanup-hook",
        str(HOOKS / "certbot-cleanup.sh"),
        "--server",
        pebble.directory_url,
        "--config-dir",
        str(workdir / "config"),
        "--work-dir",
        str(workdir / "work"),
        "--logs-dir",
        str(workdir / "logs"),
        "--non-interactive",
        "--agree-tos",
        "--register-unsafely-without-email",
        "--key-type",
        "ecdsa",
        *[arg for name in NAMES for arg in ("-d", name)],
    ]


def _lego(pebble: PebbleServer, workdir: Path, env: dict[str, str]) -> list[str]:
    env["LEGO_CA_CERTIFICATES"] = str(pebble.ca_bundle_path)
    env["EXEC_PATH"] = str(HOOKS / "lego-exec.sh")
    env["EXEC_PROPAGATION_TIMEOUT"] = "30"
    env["EXEC_POLLING_INTERVAL"] = "1"
    return [
        "lego",
        "--server",
        pebble.directory_url,
        "--accept-tos",
        "--email",
        "bench@example.org",
        "--path",
        str(workdir / "lego"),
        "--dns",
        "exec",
        "--dns.resolvers",
        pebble.dns_server,
        # challtestsrv answers no SOA queries, which lego's own propagation check
        # needs to find the zone: lego runs without it, like certbot's manual hooks.
        "--dns.disable-cp",
        "--key-type",
        "ec256",
        *[arg for name in NAMES for arg in ("-d", name)],
        "run",
    ]


def run(n: int, log: Callable[[str], None]) -> tuple[str, dict[str, float]]:
    """Run every client ``n`` times, interleaved; returns Markdown and headline numbers."""
    clients: list[
        tuple[str, Callable[[PebbleServer, Path, dict[str, str]], list[str]]]
    ] = [
        ("ours (Secure Remote Access)", lambda p, w, e: _ours(p, w, e, "")),
    ]
    if certbot_binary().exists():
        clients.append(("certbot", _certbot))
    if shutil.which("lego"):
        clients.append(("lego", _lego))
    clients.append(
        ("ours, poll interval 1 s (variant)", lambda p, w, e: _ours(p, w, e, "1"))
    )
    results = {label: ClientResult(label) for label, _ in clients}
    with PebbleServer(extra_env={"PEBBLE_WFE_NONCEREJECT": "0"}) as pebble:
        pebble_log = (pebble.workdir or Path()) / "pebble.log"
        for i in range(n):
            for label, argv_for in clients:
                result = results[label]
                with tempfile.TemporaryDirectory(prefix="bench-issue-") as tmp:
                    env = {**os.environ, "BENCH_CHALLTESTSRV": pebble.challtestsrv_url}
                    argv = argv_for(pebble, Path(tmp), env)
                    before = len(
                        _REQUEST.findall(pebble_log.read_text(errors="replace"))
                    )
                    proc = run_process(argv, env=env)
                    after = len(
                        _REQUEST.findall(pebble_log.read_text(errors="replace"))
                    )
                if proc.returncode != 0:
                    result.failures.append((proc.stderr or proc.stdout)[-400:])
                    log(f"  {label} run {i + 1}: FAILED\n{proc.stderr[-1500:]}")
                    continue
                result.runs.append(proc)
                result.requests.append(after - before)
                if label.startswith("ours"):
                    import json

                    result.in_process.append(json.loads(proc.stdout)["in_process"])
                log(
                    f"  {label} run {i + 1}: {proc.wall:.2f} s, {after - before} requests"
                )
    return _report(n, results)


def _report(n: int, results: dict[str, ClientResult]) -> tuple[str, dict[str, float]]:
    ours = results["ours (Secure Remote Access)"]
    ours_median = median([r.wall for r in ours.runs])
    rows = []
    headline: dict[str, float] = {}
    for result in results.values():
        walls = [r.wall for r in result.runs]
        if not walls:
            rows.append([result.label, "failed", "", "", "", "", "", "", ""])
            continue
        med = median(walls)
        headline[result.label] = med
        rows.append(
            [
                result.label,
                fmt_s(med),
                fmt_s(min(walls)),
                fmt_s(max(walls)),
                f"{med / ours_median:.2f}x" if ours_median else "",
                f"{median(result.requests):.0f}",
                fmt_s(median([r.cpu for r in result.runs])),
                f"{median([r.max_rss_kib for r in result.runs]) / 1024:.0f} MiB",
                f"{len(result.runs)}/{len(result.runs) + len(result.failures)}",
            ]
        )
    text = table(
        [
            "client",
            "median",
            "min",
            "max",
            "median / ours",
            "HTTP requests to the CA",
            "CPU time (median)",
            "peak RSS (median)",
            "succeeded",
        ],
        rows,
    )
    if ours.in_process:
        text += (
            f"\n\nOurs in-process (from the first request to the certificate, no "
            f"interpreter start-up or imports): median {fmt_s(median(ours.in_process))}, "
            f"min {fmt_s(min(ours.in_process))}, max {fmt_s(max(ours.in_process))}."
        )
    text += f"\n\n{n} runs per client, interleaved (ours, certbot, lego, ours, ...)."
    return text, headline
