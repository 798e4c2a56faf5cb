"""Section 1: issuance latency, ours vs certbot vs lego, against one local Pebble."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys
import tempfile

from tests.fakes.pebble import PebbleServer

from .ca_proxy import TimestampProxy
from .common import CACHE, ROOT, ProcessRun, fmt_s, median, run_process, table

NAMES = ("bench.duckdns.org",)
OURS = "ours (Secure Remote Access)"
HOOKS = ROOT / "bench" / "hooks"
_REQUEST = re.compile(
    r"^Pebble \S+ \S+ (GET|HEAD|POST) (\S+) -> calling handler", re.MULTILINE
)


def certbot_binary() -> Path:
    """certbot in its own venv under the cache directory (see scripts/bench)."""
    return CACHE / "certbot-venv" / "bin" / "certbot"


@dataclass(frozen=True)
class Lego:
    """One lego binary the benchmark runs: where it is and which release it is."""

    binary: str
    version: str
    source: str

    @property
    def label(self) -> str:
        """The row's name: the release and where it comes from."""
        return f"lego {self.version} ({self.source})"


def legos() -> list[Lego]:
    """Debian bookworm's lego (the machine's package) and Debian sid's (scripts/bench)."""
    found: list[Lego] = []
    if shutil.which("lego"):
        version = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "lego"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        found.append(Lego("lego", _upstream(version), "Debian bookworm"))
    sid = CACHE / "lego-sid"
    if (sid / "usr" / "bin" / "lego").exists():
        version = (sid / ".version").read_text().strip()
        found.append(Lego(str(sid / "usr/bin/lego"), _upstream(version), "Debian sid"))
    return found


def _upstream(debian_version: str) -> str:
    """``4.35.2-3`` -> ``4.35.2``."""
    return debian_version.split("-", 1)[0] or "unknown"


def certbot_label() -> str:
    """``certbot 5.8.0`` as the installed binary says, or plain ``certbot``."""
    try:
        out = subprocess.run(
            [str(certbot_binary()), "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "certbot"
    return (out.stdout or out.stderr).strip() or "certbot"


def tool_versions() -> dict[str, str]:
    """Versions of certbot, the lego releases and Pebble for the machine description."""
    versions = {
        "certbot": certbot_label()
        if certbot_binary().exists()
        else "certbot not installed",
        "lego": ", ".join(
            f"lego {lego.version} ({lego.source} package)" for lego in legos()
        )
        or "lego not installed",
    }
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


@dataclass(frozen=True)
class Job:
    """One issuance: where the CA is, for which names, the client's state directory."""

    pebble: PebbleServer
    directory_url: str
    names: tuple[str, ...]
    workdir: Path
    keep_account: bool = False


type ArgvFor = Callable[[Job, dict[str, str]], list[str]]


def _ours(job: Job, env: dict[str, str], poll: str = "") -> list[str]:
    env["BENCH_POLL_INTERVAL"] = poll
    if job.keep_account:
        env["BENCH_ACCOUNT"] = str(job.workdir / "account.json")
    pebble = job.pebble
    return [
        sys.executable,
        str(ROOT / "bench" / "ours_issue.py"),
        job.directory_url,
        str(pebble.ca_bundle_path),
        pebble.challtestsrv_url,
        pebble.dns_server,
        "ec-p256",
        *job.names,
    ]


def _certbot(job: Job, env: dict[str, str]) -> list[str]:
    pebble, workdir = job.pebble, job.workdir
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
        job.directory_url,
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
        *[arg for name in job.names for arg in ("-d", name)],
    ]


def _lego(job: Job, env: dict[str, str], lego: Lego) -> list[str]:
    pebble, workdir = job.pebble, job.workdir
    env["LEGO_CA_CERTIFICATES"] = str(pebble.ca_bundle_path)
    env["EXEC_PATH"] = str(HOOKS / "lego-exec.sh")
    env["EXEC_PROPAGATION_TIMEOUT"] = "30"
    env["EXEC_POLLING_INTERVAL"] = "1"
    # challtestsrv answers no SOA queries, which lego's own propagation check
    # needs to find the zone: lego runs without it, like certbot's manual hooks
    # (4.9 names the flag --dns.disable-cp, later releases deprecate that name).
    no_check = (
        "--dns.disable-cp"
        if lego.version.startswith("4.9.")
        else "--dns.propagation-disable-ans"
    )
    return [
        lego.binary,
        "--server",
        job.directory_url,
        "--accept-tos",
        "--email",
        "bench@example.org",
        "--path",
        str(workdir / "lego"),
        "--dns",
        "exec",
        "--dns.resolvers",
        pebble.dns_server,
        no_check,
        "--key-type",
        "ec256",
        *[arg for name in job.names for arg in ("-d", name)],
        "run",
    ]


def _clients() -> list[tuple[str, ArgvFor]]:
    clients: list[tuple[str, ArgvFor]] = [(OURS, _ours)]
    if certbot_binary().exists():
        clients.append((certbot_label(), _certbot))
    clients.extend((lego.label, partial(_lego, lego=lego)) for lego in legos())
    return clients


def _requests(pebble_log: Path) -> list[str]:
    return [
        f"{method} {path}"
        for method, path in _REQUEST.findall(pebble_log.read_text(errors="replace"))
    ]


def _issue(
    job: Job, argv_for: ArgvFor, pebble_log: Path
) -> tuple[ProcessRun, list[str]]:
    """Run one client once; its process and the requests Pebble logged meanwhile."""
    env = {**os.environ, "BENCH_CHALLTESTSRV": job.pebble.challtestsrv_url}
    argv = argv_for(job, env)
    before = len(_requests(pebble_log))
    proc = run_process(argv, env=env)
    return proc, _requests(pebble_log)[before:]


def run(n: int, log: Callable[[str], None]) -> tuple[str, dict[str, float]]:
    """Run every client ``n`` times, interleaved; returns Markdown and headline numbers."""
    clients = _clients()
    clients.append(("ours, poll interval 1 s (variant)", partial(_ours, poll="1")))
    results = {label: ClientResult(label) for label, _ in clients}
    extra_env = {"PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    with PebbleServer(extra_env=extra_env) as pebble:
        pebble_log = (pebble.workdir or Path()) / "pebble.log"
        for i in range(n):
            for label, argv_for in clients:
                result = results[label]
                with tempfile.TemporaryDirectory(prefix="bench-issue-") as tmp:
                    job = Job(pebble, pebble.directory_url, NAMES, Path(tmp))
                    proc, requests = _issue(job, argv_for, pebble_log)
                if proc.returncode != 0:
                    result.failures.append((proc.stderr or proc.stdout)[-400:])
                    log(f"  {label} run {i + 1}: FAILED\n{proc.stderr[-1500:]}")
                    continue
                result.runs.append(proc)
                result.requests.append(len(requests))
                if label.startswith("ours"):
                    result.in_process.append(json.loads(proc.stdout)["in_process"])
                log(
                    f"  {label} run {i + 1}: {proc.wall:.2f} s, {len(requests)} requests"
                )
        text, headline = _report(n, results)
        more, numbers = _like_for_like(pebble, pebble_log, max(3, n // 2), log)
    return text + "\n\n" + more, headline | numbers


@dataclass
class NetResult:
    """Like-for-like runs of one client: proxy-measured times, requests."""

    label: str
    times: list[float] = field(default_factory=list)
    requests: list[list[str]] = field(default_factory=list)
    in_process: list[float] = field(default_factory=list)
    failures: int = 0


def _like_for_like(
    pebble: PebbleServer, pebble_log: Path, n: int, log: Callable[[str], None]
) -> tuple[str, dict[str, float]]:
    """Each client with its account kept, timed from its first byte to the CA."""
    proxy = TimestampProxy("127.0.0.1", pebble.acme_port)
    proxy.start()
    directory = f"https://127.0.0.1:{proxy.port}/dir"
    clients = _clients()
    results = {label: NetResult(label) for label, _ in clients}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-state-") as state:
            for i in range(-1, n):  # run -1: registers each client's account
                for index, (label, argv_for) in enumerate(clients):
                    workdir = Path(state) / str(index)
                    workdir.mkdir(exist_ok=True)
                    names = (f"r{i + 1}-c{index}.bench.duckdns.org",)
                    job = Job(pebble, directory, names, workdir, keep_account=True)
                    proxy.reset()
                    proc, requests = _issue(job, argv_for, pebble_log)
                    result = results[label]
                    if proc.returncode != 0 or proxy.elapsed is None:
                        result.failures += 1
                        log(f"  {label} (kept account): FAILED\n{proc.stderr[-800:]}")
                        continue
                    if i < 0:
                        continue
                    result.times.append(proxy.elapsed)
                    result.requests.append(requests)
                    if label == OURS:
                        result.in_process.append(json.loads(proc.stdout)["in_process"])
                    log(
                        f"  {label} (kept account) run {i + 1}: "
                        f"{proxy.elapsed:.2f} s at the CA, {len(requests)} requests"
                    )
    finally:
        proxy.stop()
    return _net_report(n, results)


def _net_report(n: int, results: dict[str, NetResult]) -> tuple[str, dict[str, float]]:
    ours = results[OURS]
    ours_median = median(ours.times)
    others = {
        label: median(r.times)
        for label, r in results.items()
        if label != OURS and r.times
    }
    rows = []
    for result in results.values():
        if not result.times:
            rows.append([result.label, "failed", "", "", "", ""])
            continue
        med = median(result.times)
        rows.append(
            [
                result.label,
                fmt_s(med),
                f"{fmt_s(min(result.times))}–{fmt_s(max(result.times))}",
                f"{ours_median / med:.2f}x" if med else "",
                f"{median([len(r) for r in result.requests]):.0f}",
                f"{len(result.times)}/{len(result.times) + result.failures}",
            ]
        )
    text = (
        "Like for like: each client's issuance without its own start-up, from its "
        "first byte to the CA to the last byte of the certificate, measured the "
        "same way for every client by a TCP proxy in front of Pebble; each client "
        "keeps its account from a first, uncounted run (as the integration does "
        "between renewals) and orders a new name each run (Pebble reuses no "
        "authorization).\n\n"
        + table(
            [
                "client",
                "median at the CA",
                "min–max",
                "ours / this",
                "requests to the CA",
                "succeeded",
            ],
            rows,
        )
    )
    headline: dict[str, float] = {}
    if others and ours.times:
        fastest_label = min(others, key=lambda label: others[label])
        fastest = results[fastest_label]
        headline = {"net_ours": ours_median, "net_fastest": others[fastest_label]}
        spread = max(_spread(ours.times), _spread(fastest.times))
        if spread > abs(others[fastest_label] - ours_median):
            text += (
                f"\n\nSpread: the runs' spread ({fmt_s(spread)}) is larger than "
                f"the difference between ours and {fastest_label}."
            )
        text += (
            f"\n\nOurs vs the faster other client ({fastest_label}): "
            f"{ours_median / others[fastest_label]:.2f}x (goal: at most 0.5x)."
        )
    if ours.requests:
        sample = ours.requests[0]
        text += (
            f"\n\nOur requests in one run ({len(sample)}): "
            + ", ".join(f"`{r}`" for r in sample)
            + f". In-process (our own clock, first request to certificate): median "
            f"{fmt_s(median(ours.in_process))}."
        )
    text += f"\n\n{n} runs per client after the account run, interleaved."
    return text, headline


def _spread(values: list[float]) -> float:
    return max(values) - min(values) if values else 0.0


def _report(n: int, results: dict[str, ClientResult]) -> tuple[str, dict[str, float]]:
    ours = results[OURS]
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
    text += (
        f"\n\n{n} runs per client, interleaved (ours, certbot, each lego, ours, ...)."
    )
    return text, headline
