"""Tests for protocol/pairfiles.py: verified, atomic certificate + key installs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
import contextlib
import errno
import logging
import os
from pathlib import Path
import re
import stat
import threading
from typing import Any

import pytest

from custom_components.secure_remote_access.protocol import (
    fileops as fo,
    pairfiles as f,
    x509 as c,
)
from custom_components.secure_remote_access.protocol.pairfiles import RecoveryStatus
from tests.fakes import certs

NAMES = ["example.test", "www.example.test"]
TRACKED_CALLS = (
    "open",
    "read",
    "write",
    "fsync",
    "fstat",
    "stat",
    "replace",
    "unlink",
    "mkdir",
    "chmod",
    "fchmod",
)


class SimulatedCrash(BaseException):
    """The process dies at this point: no except/cleanup code of ours runs."""


@pytest.fixture(scope="module")
def old() -> certs.IssuedCertificate:
    """Return the pair that is live before an install."""
    return certs.issue(NAMES, key=certs.generate_key(slot=10))


@pytest.fixture(scope="module")
def new() -> certs.IssuedCertificate:
    """Return the pair being installed."""
    return certs.issue(NAMES, key=certs.generate_key(slot=11))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(path.relative_to(folder)): (
            path.read_bytes() if path.is_file() else b"<dir>",
            _mode(path),
        )
        for path in sorted(folder.rglob("*"))
    }


def _staging_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".new"))


def _assert_no_leftovers(folder: Path, cert_path: Path, key_path: Path) -> None:
    """Neither a kept previous pair nor a staging file is left behind."""
    assert not fo.previous_path(cert_path).exists()
    assert not fo.previous_path(key_path).exists()
    assert _staging_left(folder) == []


def _install(
    folder: Path, pair: certs.IssuedCertificate, **kwargs: Any
) -> f.PairWriteResult:
    return f.write_certificate_pair(
        folder / "fullchain.pem",
        folder / "privkey.pem",
        pair.fullchain_pem,
        pair.key_pem,
        expected_names=kwargs.pop("expected_names", NAMES),
        allowed=kwargs.pop("allowed", [folder.parent]),
        **kwargs,
    )


@contextlib.contextmanager
def fail_at(
    step: int, make_error: Callable[[str, tuple[Any, ...]], BaseException]
) -> Iterator[list[str]]:
    """Raise ``make_error(name, args)`` at the ``step``-th tracked ``os`` call."""
    calls: list[str] = []
    originals = {name: getattr(os, name) for name in TRACKED_CALLS}

    def wrap(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{name} {args[0] if args else ''}")
            if len(calls) - 1 == step:
                raise make_error(name, args)
            return func(*args, **kwargs)

        return wrapper

    for name, func in originals.items():
        setattr(os, name, wrap(name, func))
    try:
        yield calls
    finally:
        for name, func in originals.items():
            setattr(os, name, func)


# ------------------------------------------------------------ success paths


def test_first_install_creates_directories_and_modes(
    tmp_path: Path, new: certs.IssuedCertificate
) -> None:
    """Missing directories are created; key 0600 in a 0700 directory."""
    cert_path = tmp_path / "www" / "certs" / "fullchain.pem"
    key_path = tmp_path / "secret" / "keys" / "privkey.pem"
    result = f.write_certificate_pair(
        str(cert_path),
        key_path,
        new.fullchain_pem,
        new.key_pem,
        expected_names=["www.example.test"],
        allowed=[tmp_path],
    )
    assert cert_path.read_bytes() == new.fullchain_pem
    assert key_path.read_bytes() == new.key_pem
    assert _mode(key_path) == 0o600
    assert _mode(cert_path) == 0o644
    assert _mode(key_path.parent) == 0o700
    assert _mode(key_path.parent.parent) == 0o755
    assert _mode(cert_path.parent) == 0o755
    assert result.previous_kept is False
    assert result.cert_path == str(cert_path)
    assert result.key_path == str(key_path)
    assert result.certificate.fingerprint_sha256 == new.fingerprint_sha256
    assert result.certificate.key_matches is True
    _assert_no_leftovers(tmp_path, cert_path, key_path)


def test_replace_keeps_previous_pair(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """The replaced pair is kept as .previous; modes are kept or tightened."""
    cert_path, key_path = old.write(tmp_path)
    cert_path.chmod(0o640)
    key_path.chmod(0o644)  # too open: the new key and the backup get 0600
    result = _install(tmp_path, new)
    assert result.previous_kept is True
    assert cert_path.read_bytes() == new.fullchain_pem
    assert key_path.read_bytes() == new.key_pem
    assert fo.previous_path(cert_path).read_bytes() == old.fullchain_pem
    assert fo.previous_path(key_path).read_bytes() == old.key_pem
    assert fo.previous_path(cert_path) == tmp_path / "fullchain.pem.previous"
    assert fo.previous_path(key_path) == tmp_path / "privkey.pem.previous"
    assert _mode(key_path) == 0o600
    assert _mode(fo.previous_path(key_path)) == 0o600
    assert _mode(cert_path) == 0o640
    assert _mode(fo.previous_path(cert_path)) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fullchain.pem",
        "fullchain.pem.previous",
        "privkey.pem",
        "privkey.pem.previous",
    ]
    info = c.read_certificate_pair(cert_path, key_path)
    assert info.key_matches is True
    assert info.certificate.fingerprint_sha256 == new.fingerprint_sha256

    newer = certs.issue(NAMES, key=certs.generate_key(slot=12))
    _install(tmp_path, newer)
    assert fo.previous_path(cert_path).read_bytes() == new.fullchain_pem
    assert fo.previous_path(key_path).read_bytes() == new.key_pem


def test_key_is_never_readable_by_others(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """Key files are created 0600 with O_EXCL, even with umask 0."""
    old.write(tmp_path)
    real_open, real_write = os.open, os.write
    created: dict[str, tuple[int, int]] = {}
    modes_at_first_write: dict[int, int] = {}

    def spy_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        fd = real_open(path, flags, mode, **kwargs)
        if flags & os.O_CREAT:
            created[os.fspath(path)] = (flags, mode)
        return fd

    def spy_write(fd: int, data: Any) -> int:
        modes_at_first_write.setdefault(fd, stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    previous_umask = os.umask(0)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(os, "open", spy_open)
            patch.setattr(os, "write", spy_write)
            _install(tmp_path, new)
    finally:
        os.umask(previous_umask)
    key_files = {p: v for p, v in created.items() if "privkey" in p}
    # Created relative to the folder's descriptor (openat), never by full path.
    assert sorted(re.sub(r"\.[0-9a-f]{8}\.", ".RUN.", p) for p in key_files) == [
        "privkey.pem.RUN.new",
        "privkey.pem.previous.RUN.new",
    ]
    for flags, mode in key_files.values():
        assert flags & os.O_EXCL
        assert flags & os.O_NOFOLLOW
        assert mode == 0o600
    assert set(modes_at_first_write.values()) <= {0o600, 0o644}
    assert _mode(tmp_path / "privkey.pem") == 0o600


def test_mismatched_live_pair_does_not_overwrite_a_good_backup(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """A broken live pair is replaced, but the .previous pair stays."""
    cert_path, key_path = old.write(tmp_path)
    _install(tmp_path, new)  # .previous = old pair (good)
    key_path.write_bytes(certs.generate_key(slot=13).private_bytes(*_pkcs8()))
    newer = certs.issue(NAMES, key=certs.generate_key(slot=12))
    result = _install(tmp_path, newer)
    assert result.previous_kept is False
    assert fo.previous_path(cert_path).read_bytes() == old.fullchain_pem
    assert fo.previous_path(key_path).read_bytes() == old.key_pem
    assert key_path.read_bytes() == newer.key_pem


def _pkcs8() -> tuple[Any, Any, Any]:
    from cryptography.hazmat.primitives import serialization

    return (
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# ------------------------------------------------------- verification failures


@pytest.mark.parametrize(
    ("case", "error", "reason"),
    [
        ("mismatched_key", c.KeyMismatchError, "key_mismatch"),
        ("wrong_names", c.NamesNotCoveredError, "names_not_covered"),
        ("broken_chain", c.ChainInvalidError, "chain_invalid"),
        ("expired", c.CertificateExpiredError, "expired"),
        ("not_yet_valid", c.CertificateNotYetValidError, "not_yet_valid"),
        ("garbage_cert", c.CertificateFormatError, "invalid_format"),
        ("empty_cert", c.CertificateFormatError, "invalid_format"),
        ("garbage_key", c.PrivateKeyFormatError, "invalid_key"),
        ("encrypted_key", c.PrivateKeyEncryptedError, "key_encrypted"),
    ],
)
def test_verification_failure_leaves_files_untouched(
    tmp_path: Path,
    old: certs.IssuedCertificate,
    new: certs.IssuedCertificate,
    case: str,
    error: type[c.CertificateError],
    reason: str,
) -> None:
    """Every failed check raises before anything on disk changes."""
    old.write(tmp_path)
    _install(tmp_path, new)  # also creates the .previous pair
    before = _snapshot(tmp_path)
    chain, key = new.fullchain_pem, new.key_pem
    names = NAMES
    match case:
        case "mismatched_key":
            key = certs.generate_key(slot=14).private_bytes(*_pkcs8())
        case "wrong_names":
            names = ["example.test", "other.test"]
        case "broken_chain":
            chain = new.cert_pem + certs.other_pki().intermediate.cert_pem
        case "expired":
            issued = certs.issue(NAMES, expired=True)
            chain, key = issued.fullchain_pem, issued.key_pem
        case "not_yet_valid":
            issued = certs.issue(NAMES, not_yet_valid=True)
            chain, key = issued.fullchain_pem, issued.key_pem
        case "garbage_cert":
            chain = certs.GARBAGE
        case "empty_cert":
            chain = b""
        case "garbage_key":
            key = certs.GARBAGE
        case "encrypted_key":
            key = new.encrypted_key_pem()
    with pytest.raises(error) as err:
        f.write_certificate_pair(
            tmp_path / "fullchain.pem",
            tmp_path / "privkey.pem",
            chain,
            key,
            expected_names=names,
            allowed=[tmp_path],
        )
    assert err.value.reason == reason
    assert _snapshot(tmp_path) == before

    missing_dirs = tmp_path / "not" / "created"
    with pytest.raises(error):
        f.write_certificate_pair(
            missing_dirs / "fullchain.pem",
            missing_dirs / "privkey.pem",
            chain,
            key,
            expected_names=names,
            allowed=[tmp_path],
        )
    assert not missing_dirs.parent.exists()


def test_unreadable_live_file_aborts_before_any_change(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """A live path that cannot be read (a directory) stops the install."""
    (tmp_path / "fullchain.pem").mkdir()
    certs.write_file(tmp_path / "privkey.pem", old.key_pem, 0o600)
    before = _snapshot(tmp_path)
    with pytest.raises(f.PairWriteError) as err:
        _install(tmp_path, new)
    assert err.value.reason == "write_failed"
    assert err.value.recovery_needed is False
    assert _snapshot(tmp_path) == before


def test_same_path_for_certificate_and_key(
    tmp_path: Path, new: certs.IssuedCertificate
) -> None:
    """A single combined file is not supported."""
    with pytest.raises(f.PairWriteError, match="same file"):
        f.write_certificate_pair(
            tmp_path / "both.pem",
            tmp_path / "." / "both.pem",
            new.fullchain_pem,
            new.key_pem,
            expected_names=[],
            allowed=[tmp_path],
        )


# ------------------------------------------------------ crash and I/O errors


@pytest.mark.parametrize("first_install", [False, True])
def test_crash_at_every_step_leaves_a_recoverable_pair(
    tmp_path: Path,
    old: certs.IssuedCertificate,
    new: certs.IssuedCertificate,
    first_install: bool,
) -> None:
    """Killing the writer at any os call: old or new pair after recover_pair()."""
    outcomes: Counter[RecoveryStatus] = Counter()
    allowed = {(new.fullchain_pem, new.key_pem)}
    allowed.add((None, None) if first_install else (old.fullchain_pem, old.key_pem))
    step = 0
    while True:
        folder = tmp_path / f"run{step}"
        cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
        if not first_install:
            old.write(folder)
        with fail_at(step, lambda name, args: SimulatedCrash(name)) as calls:
            try:
                _install(folder, new)
            except SimulatedCrash:
                crashed = True
            else:
                crashed = False
        live_after_crash = (_read(cert_path), _read(key_path))
        status = f.recover_pair(cert_path, key_path, allowed=[tmp_path])
        live = (_read(cert_path), _read(key_path))
        assert live in allowed, (step, calls[-1], status)
        assert _staging_left(folder) == [], (step, calls[-1])
        if live_after_crash not in allowed:
            assert status is RecoveryStatus.ROLLED_FORWARD, (step, calls[-1])
        if not crashed:
            assert status is RecoveryStatus.INTACT
            assert live == (new.fullchain_pem, new.key_pem)
            break
        outcomes[status] += 1
        step += 1
    assert step > 15  # every os call of an install was a crash point
    assert outcomes[RecoveryStatus.ROLLED_FORWARD] == 1  # between the renames
    untouched = RecoveryStatus.ABSENT if first_install else RecoveryStatus.INTACT
    assert outcomes[untouched] > 10
    assert set(outcomes) <= {
        untouched,
        RecoveryStatus.ROLLED_FORWARD,
        RecoveryStatus.INTACT,  # crashed after the commit (directory fsync)
    }


@pytest.mark.parametrize("first_install", [False, True])
def test_io_error_at_every_step_keeps_the_old_pair(
    tmp_path: Path,
    old: certs.IssuedCertificate,
    new: certs.IssuedCertificate,
    first_install: bool,
) -> None:
    """An OSError anywhere: either installed, or PairWriteError and old bytes."""
    step = 0
    failures = 0
    while True:
        folder = tmp_path / f"run{step}"
        cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
        if not first_install:
            old.write(folder)
        before = _snapshot(folder) if folder.exists() else {}
        error: f.PairWriteError | None = None
        with fail_at(
            step,
            lambda name, args: OSError(
                errno.EIO, "injected", str(args[0]) if args else None
            ),
        ) as calls:
            try:
                _install(folder, new)
            except f.PairWriteError as err:
                error = err
        hit = len(calls) > step
        if error is None:
            assert (_read(cert_path), _read(key_path)) == (
                new.fullchain_pem,
                new.key_pem,
            )
        else:
            failures += 1
            assert error.recovery_needed is False
            assert "injected" in str(error)
            live = (_read(cert_path), _read(key_path))
            if first_install:
                assert live == (None, None), calls[-1]
            else:
                assert live == (old.fullchain_pem, old.key_pem), calls[-1]
                after = _snapshot(folder)
                for name in ("fullchain.pem", "privkey.pem"):
                    assert after[name] == before[name], calls[-1]
        assert _staging_left(folder) == [], calls[-1]
        expected = (
            RecoveryStatus.ABSENT
            if error and first_install
            else (RecoveryStatus.INTACT)
        )
        assert f.recover_pair(cert_path, key_path, allowed=[tmp_path]) is expected
        if not hit:
            break
        step += 1
    assert failures > 10


@pytest.mark.parametrize("first_install", [False, True])
def test_failed_rollback_is_recoverable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    old: certs.IssuedCertificate,
    new: certs.IssuedCertificate,
    first_install: bool,
) -> None:
    """When the commit and the rollback both fail, recover_pair() fixes it."""
    cert_path, key_path = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    if not first_install:
        old.write(tmp_path)
    real_replace, real_unlink = os.replace, os.unlink
    state = {"key_replaced": False}

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if state["key_replaced"]:
            raise OSError(errno.EIO, "disk gone", str(dst))
        real_replace(src, dst, **kwargs)
        if Path(dst).name == key_path.name:
            state["key_replaced"] = True

    def unlink(path: Any, **kwargs: Any) -> None:
        if state["key_replaced"]:
            raise OSError(errno.EIO, "disk gone", str(path))
        real_unlink(path, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(f.PairWriteError) as err:
        _install(tmp_path, new)
    monkeypatch.undo()
    assert err.value.recovery_needed is True
    assert key_path.read_bytes() == new.key_pem  # live pair mismatched now
    assert _read(cert_path) == (None if first_install else old.fullchain_pem)
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
        is RecoveryStatus.ROLLED_FORWARD
    )
    assert (cert_path.read_bytes(), key_path.read_bytes()) == (
        new.fullchain_pem,
        new.key_pem,
    )
    assert _staging_left(tmp_path) == []


# ----------------------------------------------------------------- recovery


def test_recover_pair_cases(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """Each recovery path, including failure when nothing matches."""
    cert_path, key_path = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path]) is RecoveryStatus.ABSENT
    )

    old.write(tmp_path)
    certs.write_file(fo.pending_path(cert_path), b"stale half-written")
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path]) is RecoveryStatus.INTACT
    )
    assert _staging_left(tmp_path) == []

    # Crash between the renames, key first: the staged certificate completes it.
    certs.write_file(key_path, new.key_pem, 0o600)
    certs.write_file(fo.pending_path(cert_path), new.fullchain_pem)
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
        is RecoveryStatus.ROLLED_FORWARD
    )
    assert cert_path.read_bytes() == new.fullchain_pem

    # The other order: the staged key completes the pair.
    certs.write_file(cert_path, old.fullchain_pem)
    certs.write_file(fo.pending_path(key_path), old.key_pem, 0o600)
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
        is RecoveryStatus.ROLLED_FORWARD
    )
    assert key_path.read_bytes() == old.key_pem

    # A staged certificate whose chain does not link is not used.
    certs.write_file(key_path, new.key_pem, 0o600)
    certs.write_file(
        fo.pending_path(cert_path),
        new.cert_pem + certs.other_pki().intermediate.cert_pem,
    )
    with pytest.raises(f.PairRecoveryError) as err:
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
    assert err.value.reason == "recovery_failed"

    # Restore the .previous copies when the live pair is broken.
    certs.write_file(fo.previous_path(cert_path), old.fullchain_pem, 0o640)
    certs.write_file(fo.previous_path(key_path), old.key_pem, 0o600)
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
        is RecoveryStatus.RESTORED_PREVIOUS
    )
    assert (cert_path.read_bytes(), key_path.read_bytes()) == (
        old.fullchain_pem,
        old.key_pem,
    )
    assert _mode(key_path) == 0o600
    assert _mode(cert_path) == 0o640
    assert fo.previous_path(cert_path).exists()

    # A missing key is restored as well.
    key_path.unlink()
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
        is RecoveryStatus.RESTORED_PREVIOUS
    )
    assert key_path.read_bytes() == old.key_pem

    # Garbage live files with a mismatched backup: nothing to restore.
    certs.write_file(cert_path, certs.GARBAGE)
    certs.write_file(fo.previous_path(key_path), new.key_pem, 0o600)
    with pytest.raises(f.PairRecoveryError):
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
    assert cert_path.read_bytes() == certs.GARBAGE


def test_recover_pair_reports_io_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    old: certs.IssuedCertificate,
    new: certs.IssuedCertificate,
) -> None:
    """A failing rename during recovery is a PairRecoveryError."""
    cert_path, key_path = old.write(tmp_path)
    certs.write_file(key_path, new.key_pem, 0o600)
    certs.write_file(fo.pending_path(cert_path), new.fullchain_pem)

    def replace(src: Any, dst: Any, **_kwargs: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(dst))

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(f.PairRecoveryError, match="Read-only"):
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])


def test_oversized_live_file_aborts_the_install(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """A live file too large to be a certificate is not copied anywhere: nothing changes."""
    cert_path, _ = old.write(tmp_path)
    certs.write_file(cert_path, b"x" * (4 * c.MAX_FILE_SIZE + 1))
    before = _snapshot(tmp_path)
    with pytest.raises(f.PairWriteError, match="file too large") as err:
        _install(tmp_path, new)
    assert err.value.path == str(cert_path)
    assert err.value.recovery_needed is False
    assert _snapshot(tmp_path) == before


def test_recover_pair_replaces_an_oversized_live_file(
    tmp_path: Path, old: certs.IssuedCertificate
) -> None:
    """A live certificate that cannot be read (too large) counts as broken."""
    cert_path, key_path = old.write(tmp_path)
    certs.write_file(fo.previous_path(cert_path), old.fullchain_pem)
    certs.write_file(fo.previous_path(key_path), old.key_pem, 0o600)
    certs.write_file(cert_path, b"-" * (4 * c.MAX_FILE_SIZE + 1))
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
        is RecoveryStatus.RESTORED_PREVIOUS
    )
    assert cert_path.read_bytes() == old.fullchain_pem
    assert key_path.read_bytes() == old.key_pem


def test_stale_staging_entry_that_cannot_be_removed(
    tmp_path: Path, old: certs.IssuedCertificate, caplog: pytest.LogCaptureFixture
) -> None:
    """An undeletable leftover is reported, and does not fail an intact pair."""
    cert_path, key_path = old.write(tmp_path)
    fo.pending_path(key_path).mkdir()
    certs.write_file(fo.pending_path(cert_path), b"half-written")
    with caplog.at_level(logging.WARNING):
        assert (
            f.recover_pair(cert_path, key_path, allowed=[tmp_path])
            is RecoveryStatus.INTACT
        )
    assert f"Cannot remove stale file {fo.pending_path(key_path)}" in caplog.text
    assert not fo.pending_path(cert_path).exists()
    assert fo.pending_path(key_path).is_dir()
    assert (cert_path.read_bytes(), key_path.read_bytes()) == (
        old.fullchain_pem,
        old.key_pem,
    )


# ------------------------------------------------------------------ read back


def test_read_certificate_pair(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """Monitoring gets the info and the key match, key problems as reasons."""
    cert_path, key_path = old.write(tmp_path)
    info = c.read_certificate_pair(cert_path, key_path)
    assert (info.key_matches, info.key_problem) == (True, None)
    assert info.certificate.key_matches is True
    assert info.certificate.dns_names == tuple(NAMES)

    certs.write_file(key_path, new.key_pem, 0o600)
    info = c.read_certificate_pair(cert_path, key_path)
    assert (info.key_matches, info.key_problem) == (False, None)
    assert info.certificate.key_matches is False

    certs.write_file(key_path, certs.GARBAGE, 0o600)
    info = c.read_certificate_pair(cert_path, key_path)
    assert (info.key_matches, info.key_problem) == (False, "invalid_key")
    assert info.certificate.key_matches is None

    key_path.unlink()
    assert c.read_certificate_pair(cert_path, key_path).key_problem == "not_found"

    cert_path.unlink()
    with pytest.raises(c.CertificateFileNotFoundError):
        c.read_certificate_pair(cert_path, key_path)


# ------------------------------------------------- the backup pair, two writers


def test_backup_pair_is_never_left_mismatched(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """A crash at any step of an install: the .previous halves still belong together."""
    newer = certs.issue(NAMES, key=certs.generate_key(slot=12))
    step = 0
    while True:
        folder = tmp_path / f"run{step}"
        old.write(folder)
        _install(folder, new)  # .previous = old
        with fail_at(step, lambda name, args: SimulatedCrash(name)):
            try:
                _install(folder, newer)
            except SimulatedCrash:
                crashed = True
            else:
                crashed = False
        cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
        backup = (_read(fo.previous_path(cert_path)), _read(fo.previous_path(key_path)))
        assert backup in {
            (old.fullchain_pem, old.key_pem),
            (new.fullchain_pem, new.key_pem),
            (None, None),
        }, step
        assert _staging_left(folder) == []
        if not crashed:
            break
        step += 1
    assert step > 15


def test_recovery_drops_a_backup_whose_halves_differ(
    tmp_path: Path,
    old: certs.IssuedCertificate,
    new: certs.IssuedCertificate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A mismatched .previous pair (edited by hand) is removed, the live pair kept."""
    cert_path, key_path = new.write(tmp_path)
    certs.write_file(fo.previous_path(cert_path), old.fullchain_pem)
    certs.write_file(fo.previous_path(key_path), new.key_pem, 0o600)
    with caplog.at_level(logging.WARNING):
        assert (
            f.recover_pair(cert_path, key_path, allowed=[tmp_path])
            is RecoveryStatus.INTACT
        )
    assert not fo.previous_path(cert_path).exists()
    assert not fo.previous_path(key_path).exists()
    assert "do not match" in caplog.text


def test_failed_backup_write_leaves_no_half_backup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    old: certs.IssuedCertificate,
    new: certs.IssuedCertificate,
) -> None:
    """An I/O error between the backup renames removes the half-replaced backup."""
    cert_path, key_path = old.write(tmp_path)
    _install(tmp_path, new)  # .previous = old
    newer = certs.issue(NAMES, key=certs.generate_key(slot=12))
    real_replace = os.replace

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        if Path(dst).name == fo.previous_path(cert_path).name:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(f.PairWriteError, match="No space"):
        _install(tmp_path, newer)
    monkeypatch.undo()
    assert (cert_path.read_bytes(), key_path.read_bytes()) == (
        new.fullchain_pem,
        new.key_pem,
    )
    _assert_no_leftovers(tmp_path, cert_path, key_path)


def test_two_writers_never_share_staging_files(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """Concurrent installs of the same pair: each completes, the result matches."""
    pairs = [
        certs.issue(NAMES, key=certs.generate_key(slot=40 + index))
        for index in range(6)
    ]
    errors: list[BaseException] = []

    def write(pair: certs.IssuedCertificate) -> None:
        try:
            _install(tmp_path, pair)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(pair,)) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    live = (
        (tmp_path / "fullchain.pem").read_bytes(),
        (tmp_path / "privkey.pem").read_bytes(),
    )
    assert live in {(pair.fullchain_pem, pair.key_pem) for pair in pairs}
    assert _staging_left(tmp_path) == []


def test_recovery_picks_the_staged_file_that_completes_the_pair(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """Several crashed installs left staging files: the matching one wins."""
    cert_path, key_path = old.write(tmp_path)
    certs.write_file(key_path, new.key_pem, 0o600)
    certs.write_file(fo.pending_path(cert_path, "0000aaaa"), b"half-written")
    certs.write_file(fo.pending_path(cert_path, "0000bbbb"), new.fullchain_pem)
    certs.write_file(fo.pending_path(cert_path, "0000cccc"), old.fullchain_pem)
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path])
        is RecoveryStatus.ROLLED_FORWARD
    )
    assert cert_path.read_bytes() == new.fullchain_pem
    assert _staging_left(tmp_path) == []
    # Names that only look like staging files are not touched.
    other = certs.write_file(tmp_path / "fullchain.pem.backup.new", b"mine")
    assert (
        f.recover_pair(cert_path, key_path, allowed=[tmp_path]) is RecoveryStatus.INTACT
    )
    assert other.read_bytes() == b"mine"


def test_read_matching_pair(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """Serving reads both files once and refuses a key of another certificate."""
    cert_path, key_path = old.write(tmp_path)
    pair = c.read_matching_pair(cert_path, key_path)
    assert (pair.certificate_pem, pair.key_pem) == (old.fullchain_pem, old.key_pem)
    combined = certs.write_file(tmp_path / "both.pem", old.fullchain_pem + old.key_pem)
    assert c.read_matching_pair(combined, combined).certificate.key_matches is True
    certs.write_file(key_path, new.key_pem, 0o600)
    with pytest.raises(c.KeyMismatchError):
        c.read_matching_pair(cert_path, key_path)


def test_a_symlinked_pair_updates_the_files_the_links_point_to(
    tmp_path: Path, old: certs.IssuedCertificate, new: certs.IssuedCertificate
) -> None:
    """certbot's live/ links into archive/: the targets change, the links stay."""
    archive, live = tmp_path / "archive", tmp_path / "live"
    archive.mkdir()
    live.mkdir()
    old.write(archive, cert_name="fullchain1.pem", key_name="privkey1.pem")
    (live / "fullchain.pem").symlink_to(archive / "fullchain1.pem")
    (live / "privkey.pem").symlink_to(archive / "privkey1.pem")
    result = f.write_certificate_pair(
        live / "fullchain.pem",
        live / "privkey.pem",
        new.fullchain_pem,
        new.key_pem,
        expected_names=NAMES,
        allowed=[tmp_path],
    )
    assert (live / "fullchain.pem").is_symlink()
    assert (live / "privkey.pem").is_symlink()
    assert (live / "fullchain.pem").read_bytes() == new.fullchain_pem
    assert (archive / "fullchain1.pem").read_bytes() == new.fullchain_pem
    assert result.previous_kept
    assert f.recover_pair(
        live / "fullchain.pem", live / "privkey.pem", allowed=[tmp_path]
    ) is (RecoveryStatus.INTACT)


def test_writability_is_checked_before_anything_is_ordered(tmp_path: Path) -> None:
    """A file where a directory must go, or a directory where the key must go."""
    f.check_pair_writable(
        tmp_path / "new" / "fullchain.pem", tmp_path / "privkey.pem", allowed=[tmp_path]
    )
    (tmp_path / "keys").write_text("a file")
    with pytest.raises(f.PairWriteError, match=r"is a file|Not a directory"):
        f.check_pair_writable(
            tmp_path / "fullchain.pem", tmp_path / "keys" / "k.pem", allowed=[tmp_path]
        )
    (tmp_path / "dir.pem").mkdir()
    with pytest.raises(f.PairWriteError, match="cannot read the current file"):
        f.check_pair_writable(
            tmp_path / "dir.pem", tmp_path / "privkey.pem", allowed=[tmp_path]
        )
