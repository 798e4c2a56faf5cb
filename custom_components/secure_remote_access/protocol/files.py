"""Atomic, verified installation of a certificate + private key pair.

No Home Assistant imports. Every function here blocks (file system work):
callers in the event loop run them with ``hass.async_add_executor_job``.

Files, for ``cert_path=/ssl/fullchain.pem`` and ``key_path=/ssl/privkey.pem``:

* ``fullchain.pem`` / ``privkey.pem``: the live pair.
* ``fullchain.pem.previous`` / ``privkey.pem.previous``: the pair that was
  live before the last install, kept only when it matched (a broken live pair
  never overwrites a good backup). Key copies are always mode 0600.
* ``<name>.<run>.new`` (also ``<name>.previous.<run>.new``): staging files of
  one install (``run`` is random per install, so two writers never share a
  staging file), complete and fsynced before they are renamed into place;
  present only during an install or after a crash; `recover_pair` removes
  stale ones.

Install sequence of `write_certificate_pair` (one install at a time per process):

1. verify the new pair in memory (key matches the leaf, chain links, names
   covered, dates sane); on failure raise and touch nothing;
2. read the live pair; if it matches, install it as the ``.previous`` pair
   the same way as step 3 and 4 (stage both, then rename key, then certificate);
3. write ``privkey.pem.<run>.new`` (created 0600 via ``os.open``) and
   ``fullchain.pem.<run>.new``, fsync both and the directories;
4. commit: ``os.replace`` the key, then the certificate; fsync the directories.

Invariant: *each pair (live and* ``.previous``*) matches, or* `recover_pair`
*makes it match*. Before step 4 the live files are untouched. Between the two
renames of a pair its key is new and its certificate old, and the staged
certificate (complete and fsynced) completes the new pair: `recover_pair`
rolls forward with one atomic rename. If a rename raises in-process, the
writer rolls back at once to the previous bytes (kept in memory) and raises
`PairWriteError`; only if that rollback also fails is ``recovery_needed`` set,
and `recover_pair` then restores a matching pair (roll forward, else the
``.previous`` copies). Call `recover_pair` at start-up (it is cheap when
nothing is wrong).
"""

from __future__ import annotations

from collections.abc import Iterable
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import logging
import os
from pathlib import Path
import re
import secrets
import stat
import threading
from typing import Final

from .certificates import (
    DEFAULT_CLOCK_SKEW,
    MAX_FILE_SIZE,
    CertificateError,
    CertificateInfo,
    KeyMismatchError,
    StrPath,
    build_certificate_info,
    key_matches_certificate,
    parse_certificates,
    parse_private_key,
    read_certificates,
    read_file_limited,
    read_private_key_file,
    verify_certificate_pair,
)

_LOGGER = logging.getLogger(__name__)

PREVIOUS_SUFFIX: Final = ".previous"
PENDING_SUFFIX: Final = ".new"
KEY_MODE: Final = 0o600
DEFAULT_CERT_MODE: Final = 0o644
KEY_DIRECTORY_MODE: Final = 0o700
CERT_DIRECTORY_MODE: Final = 0o755
_MAX_EXISTING_SIZE: Final = 4 * MAX_FILE_SIZE
_RUN_PATTERN: Final = "[0-9a-f]{8}"
# One install or recovery at a time in this process, whatever the entry.
_PAIR_LOCK: Final = threading.Lock()


class PairWriteError(CertificateError):
    """Writing the pair failed; the live pair is the old one unless
    ``recovery_needed`` is True (then call `recover_pair`)."""

    reason = "write_failed"

    def __init__(
        self,
        message: str,
        *,
        path: StrPath | None = None,
        recovery_needed: bool = False,
    ) -> None:
        """Store whether `recover_pair` must run."""
        super().__init__(message, path=path)
        self.recovery_needed = recovery_needed


class PairRecoveryError(CertificateError):
    """No matching pair could be restored."""

    reason = "recovery_failed"


class RecoveryStatus(StrEnum):
    """What `recover_pair` found or did."""

    INTACT = "intact"
    """The live pair matched; stale staging files (if any) were removed."""
    ROLLED_FORWARD = "rolled_forward"
    """An interrupted install was completed with its staged file."""
    RESTORED_PREVIOUS = "restored_previous"
    """The ``.previous`` pair was copied back into place."""
    ABSENT = "absent"
    """Neither live file exists (nothing installed yet); nothing done."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PairWriteResult:
    """Outcome of a successful `write_certificate_pair`."""

    certificate: CertificateInfo
    cert_path: str
    key_path: str
    previous_kept: bool
    """True when the replaced pair was saved under the ``.previous`` names."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PairInfo:
    """A live pair read back for monitoring (no secrets).

    ``key_problem`` is the `CertificateError.reason` when the key file could
    not be used (``not_found``, ``invalid_key``...); ``key_matches`` is then False.
    """

    certificate: CertificateInfo
    key_matches: bool
    key_problem: str | None = None


def previous_path(path: StrPath) -> Path:
    """Return where the previous version of ``path`` is kept."""
    return Path(f"{os.fspath(path)}{PREVIOUS_SUFFIX}")


def pending_path(path: StrPath, run: str = "") -> Path:
    """Return the staging file of install ``run`` renamed onto ``path`` when complete."""
    middle = f".{run}" if run else ""
    return Path(f"{os.fspath(path)}{middle}{PENDING_SUFFIX}")


def _new_run() -> str:
    return secrets.token_hex(4)


def staged_files(path: StrPath) -> list[Path]:
    """Every staging file of ``path`` (any install), newest first."""
    target = Path(os.fspath(path))
    pattern = re.compile(
        rf"{re.escape(target.name)}(?:\.{_RUN_PATTERN})?{re.escape(PENDING_SUFFIX)}"
    )
    found: list[tuple[float, Path]] = []
    try:
        with os.scandir(target.parent) as entries:
            for entry in entries:
                if pattern.fullmatch(entry.name):
                    try:
                        mtime = entry.stat(follow_symlinks=False).st_mtime
                    except OSError:
                        mtime = 0.0
                    found.append((mtime, Path(entry.path)))
    except OSError:
        return []
    return [path for _, path in sorted(found, key=lambda item: -item[0])]


# ------------------------------------------------------------ low-level I/O


def _pair_paths(cert_path: StrPath, key_path: StrPath) -> tuple[Path, Path]:
    """The real files of the pair: a symbolic link (certbot's live/) is followed,
    so that the file it points to is the one replaced, not the link."""
    cert = Path(os.path.realpath(os.fspath(cert_path)))
    key = Path(os.path.realpath(os.fspath(key_path)))
    if cert == key:
        raise ValueError("the certificate and the key need different paths")
    return cert, key


def check_pair_writable(cert_path: StrPath, key_path: StrPath) -> None:
    """Raise `PairWriteError` unless the pair can be installed at these paths. Blocking.

    Run before anything is ordered: an existing file must be readable (it is
    kept as the backup) and its directory, or the nearest existing parent of
    a missing one, writable.
    """
    for path in _pair_paths(cert_path, key_path):
        try:
            _read_existing(path)
        except OSError as err:
            raise PairWriteError(
                f"cannot read the current file to keep it: {err.strerror or err}",
                path=path,
            ) from err
        directory = path.parent
        while not directory.exists() and directory.parent != directory:
            directory = directory.parent
        if not directory.is_dir():
            raise PairWriteError(
                f"cannot create the directory {path.parent}: {directory} is a file",
                path=path,
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            reason = (
                "the file system is read-only"
                if _read_only(directory)
                else "permission denied"
            )
            raise PairWriteError(f"cannot write in {directory}: {reason}", path=path)


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _read_existing(path: Path) -> bytes | None:
    """Return a file's bytes, None when it does not exist; OSError otherwise."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(21, "not a regular file", os.fspath(path))
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, _MAX_EXISTING_SIZE + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_EXISTING_SIZE:
                raise OSError(27, "file too large", os.fspath(path))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _read_quietly(path: Path) -> bytes | None:
    """Return a file's bytes, or None when it is missing or unreadable."""
    try:
        return _read_existing(path)
    except OSError:
        return None


def _existing_mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` afresh with ``mode`` from the first instant, write, fsync."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # exact mode whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _install_file(path: Path, data: bytes, mode: int, run: str) -> None:
    """Atomically replace ``path`` with ``data`` through its staging file."""
    staging = pending_path(path, run)
    _write_file(staging, data, mode)
    os.replace(staging, path)


def _install_previous(
    cert: Path, key: Path, cert_data: bytes, key_data: bytes, mode: int, run: str
) -> None:
    """Make ``(cert_data, key_data)`` the ``.previous`` pair: stage both, then rename.

    On an error, a half-replaced ``.previous`` pair is removed: no backup is
    better than a backup whose halves do not belong together.
    """
    previous_cert, previous_key = previous_path(cert), previous_path(key)
    try:
        _write_file(pending_path(previous_key, run), key_data, KEY_MODE)
        _write_file(pending_path(previous_cert, run), cert_data, mode)
        os.replace(pending_path(previous_key, run), previous_key)
        os.replace(pending_path(previous_cert, run), previous_cert)
    except OSError:
        if not _pair_matches(_read_quietly(previous_cert), _read_quietly(previous_key)):
            _remove_stale(previous_cert, previous_key)
        raise


def _fsync_directories(*paths: Path) -> None:
    """Make renames durable; best effort (some file systems refuse)."""
    for directory in dict.fromkeys(path.parent for path in paths):
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            _LOGGER.debug("Cannot fsync directory %s: %s", directory, err)


def _ensure_directory(directory: Path, mode: int) -> None:
    """Create ``directory`` (``mode``) and missing parents (0755)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        folder_mode = mode if folder == directory else CERT_DIRECTORY_MODE
        try:
            os.mkdir(folder, folder_mode)
        except FileExistsError:
            continue
        os.chmod(folder, folder_mode)


def _remove_stale(*paths: Path) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            _LOGGER.warning("Cannot remove stale file %s: %s", path, err)


def _staging_files(cert: Path, key: Path) -> list[Path]:
    """The staging files of every install of this pair."""
    return [
        staged
        for path in (cert, key, previous_path(cert), previous_path(key))
        for staged in staged_files(path)
    ]


def _run_staging_files(cert: Path, key: Path, run: str) -> tuple[Path, ...]:
    """The staging files of one install."""
    return tuple(
        pending_path(path, run)
        for path in (cert, key, previous_path(cert), previous_path(key))
    )


def _pair_matches(
    cert_data: bytes | None, key_data: bytes | None, *, require_chain: bool = False
) -> bool:
    """Return True when the data parse and the key belongs to the leaf."""
    if not cert_data or not key_data:
        return False
    try:
        certificates = parse_certificates(cert_data)
        key = parse_private_key(key_data)
        if require_chain and not build_certificate_info(certificates).chain_valid:
            return False
    except CertificateError:
        return False
    return key_matches_certificate(key, certificates[0])


# ------------------------------------------------------------------ public


def write_certificate_pair(
    cert_path: StrPath,
    key_path: StrPath,
    fullchain_pem: bytes,
    key_pem: bytes,
    *,
    expected_names: Iterable[str],
    now: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> PairWriteResult:
    """Verify, then atomically install a full chain and its key. Blocking.

    The bytes are written as given. Verification failures raise
    `verify_certificate_pair`'s errors (`PairVerificationError` subclasses,
    `CertificateFormatError`, `PrivateKeyFormatError`) before anything is
    touched; I/O failures raise `PairWriteError` (see the module docstring).
    Missing directories are created: 0700 for the key's, 0755 otherwise. The
    key is 0600; the certificate keeps its current mode (new: 0644).
    """
    info = verify_certificate_pair(
        fullchain_pem,
        key_pem,
        expected_names=expected_names,
        now=now,
        clock_skew=clock_skew,
    )
    cert, key = _pair_paths(cert_path, key_path)
    with _PAIR_LOCK:
        previous_kept = _install_pair(cert, key, fullchain_pem, key_pem, _new_run())
    return PairWriteResult(
        certificate=info,
        cert_path=os.fspath(cert),
        key_path=os.fspath(key),
        previous_kept=previous_kept,
    )


def _install_pair(
    cert: Path, key: Path, fullchain_pem: bytes, key_pem: bytes, run: str
) -> bool:
    """Steps 2 to 4 of the install; True when the old pair was kept as .previous."""
    try:
        old_cert = _read_existing(cert)
        old_key = _read_existing(key)
    except OSError as err:
        raise PairWriteError(
            f"cannot read the current file to keep it: {err.strerror or err}",
            path=err.filename,
        ) from err
    cert_mode = _existing_mode(cert) or DEFAULT_CERT_MODE
    previous_kept = False
    try:
        _ensure_directory(key.parent, KEY_DIRECTORY_MODE)
        _ensure_directory(cert.parent, CERT_DIRECTORY_MODE)
        if _pair_matches(old_cert, old_key):
            assert old_cert is not None and old_key is not None
            _install_previous(cert, key, old_cert, old_key, cert_mode, run)
            previous_kept = True
        _write_file(pending_path(key, run), key_pem, KEY_MODE)
        _write_file(pending_path(cert, run), fullchain_pem, cert_mode)
        _fsync_directories(cert, key)  # staged files durable before any rename
    except OSError as err:
        _remove_stale(*_run_staging_files(cert, key, run))
        raise PairWriteError(
            f"cannot write the new pair: {err.strerror or err}", path=err.filename
        ) from err

    replaced: list[tuple[Path, bytes | None, int]] = []
    try:
        os.replace(pending_path(key, run), key)
        replaced.append((key, old_key, KEY_MODE))
        os.replace(pending_path(cert, run), cert)
    except OSError as err:
        rolled_back = _roll_back(replaced, run)
        if rolled_back:  # else keep them: recover_pair may roll forward with them
            _remove_stale(*_run_staging_files(cert, key, run))
        raise PairWriteError(
            f"cannot put the new pair in place: {err.strerror or err}"
            + ("" if rolled_back else "; the old pair could not be restored"),
            path=err.filename,
            recovery_needed=not rolled_back,
        ) from err
    _fsync_directories(cert, key)
    return previous_kept


def _roll_back(replaced: list[tuple[Path, bytes | None, int]], run: str) -> bool:
    """Put the old bytes back where a new file was renamed in; True on success."""
    try:
        for path, old, mode in reversed(replaced):
            if old is None:
                os.unlink(path)
            else:
                _install_file(path, old, mode, run)
    except OSError as err:
        _LOGGER.error("Rolling back %s failed: %s", replaced, err)
        return False
    return True


def _roll_forward(
    cert: Path, key: Path, live_cert: bytes | None, live_key: bytes | None
) -> bool:
    """Complete an interrupted install of a pair with one staged file; True if done."""
    for staged in staged_files(cert):
        if _pair_matches(_read_quietly(staged), live_key, require_chain=True):
            os.replace(staged, cert)
            return True
    for staged in staged_files(key):
        if _pair_matches(live_cert, _read_quietly(staged), require_chain=True):
            os.replace(staged, key)
            return True
    return False


def _recover_previous(cert: Path, key: Path) -> None:
    """Complete an interrupted install of the .previous pair; drop a mismatched one."""
    previous_cert, previous_key = previous_path(cert), previous_path(key)
    old_cert, old_key = _read_quietly(previous_cert), _read_quietly(previous_key)
    if old_cert is None and old_key is None:
        return
    if _pair_matches(old_cert, old_key):
        return
    if _roll_forward(previous_cert, previous_key, old_cert, old_key):
        _LOGGER.warning("Completed the interrupted backup %s", previous_cert)
        return
    _LOGGER.warning(
        "Removing the backup %s / %s: its certificate and key do not match",
        previous_cert,
        previous_key,
    )
    _remove_stale(previous_cert, previous_key)


def recover_pair(cert_path: StrPath, key_path: StrPath) -> RecoveryStatus:
    """Make the live pair match again after a crash or failed write. Blocking.

    In order: a matching live pair is left alone (INTACT); a staged file that
    completes a matching pair with the other live file is renamed in
    (ROLLED_FORWARD); with no live file at all nothing is done (ABSENT);
    otherwise a matching ``.previous`` pair is copied back (RESTORED_PREVIOUS).
    The ``.previous`` pair is completed the same way, or removed when its
    halves do not match. Stale staging files are removed. Raises
    `PairRecoveryError` when no matching pair can be found or written.
    """
    cert, key = _pair_paths(cert_path, key_path)
    with _PAIR_LOCK:
        return _recover(cert, key)


def _recover(cert: Path, key: Path) -> RecoveryStatus:
    live_cert, live_key = _read_quietly(cert), _read_quietly(key)
    status: RecoveryStatus | None = None
    try:
        _recover_previous(cert, key)
        if _pair_matches(live_cert, live_key):
            status = RecoveryStatus.INTACT
        elif _roll_forward(cert, key, live_cert, live_key):
            status = RecoveryStatus.ROLLED_FORWARD
        elif (
            live_cert is None
            and live_key is None
            and not (cert.exists() or key.exists())
        ):
            status = RecoveryStatus.ABSENT
        else:
            old_cert = _read_quietly(previous_path(cert))
            old_key = _read_quietly(previous_path(key))
            if not _pair_matches(old_cert, old_key, require_chain=True):
                raise PairRecoveryError(
                    "the live pair does not match and no matching previous pair "
                    "or staged file exists",
                    path=cert,
                )
            assert old_cert is not None and old_key is not None
            cert_mode = _existing_mode(previous_path(cert)) or DEFAULT_CERT_MODE
            run = _new_run()
            _write_file(pending_path(key, run), old_key, KEY_MODE)
            _write_file(pending_path(cert, run), old_cert, cert_mode)
            os.replace(pending_path(key, run), key)
            os.replace(pending_path(cert, run), cert)
            status = RecoveryStatus.RESTORED_PREVIOUS
    except OSError as err:
        raise PairRecoveryError(
            f"cannot restore a matching pair: {err.strerror or err}",
            path=err.filename,
        ) from err
    changed = status in (
        RecoveryStatus.ROLLED_FORWARD,
        RecoveryStatus.RESTORED_PREVIOUS,
    )
    if changed:
        _fsync_directories(cert, key)
    _remove_stale(*_staging_files(cert, key))
    if changed:
        _LOGGER.warning("Certificate pair %s / %s: %s", cert, key, status.value)
    return status


def read_certificate_pair(cert_path: StrPath, key_path: StrPath) -> PairInfo:
    """Read the live pair back for monitoring. Blocking.

    Certificate problems raise `CertificateError` subclasses; key problems are
    reported in the result (``key_matches`` False, ``key_problem`` set).
    """
    certificates = read_certificates(cert_path)
    try:
        key = read_private_key_file(key_path)
    except CertificateError as err:
        return PairInfo(
            certificate=build_certificate_info(certificates),
            key_matches=False,
            key_problem=err.reason,
        )
    info = build_certificate_info(certificates, key)
    return PairInfo(certificate=info, key_matches=bool(info.key_matches))


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchingPair:
    """A certificate chain and the key that belongs to it, as read from disk."""

    certificate_pem: bytes
    key_pem: bytes
    certificate: CertificateInfo


def read_matching_pair(cert_path: StrPath, key_path: StrPath) -> MatchingPair:
    """Read a pair for serving (blocking): both parse and the key belongs to the leaf.

    ``key_path`` may be ``cert_path`` (a combined PEM file). Raises a
    `CertificateError` subclass, `KeyMismatchError` when the key belongs to
    another certificate (for example while another tool is half-way through
    copying a new pair).
    """
    cert_data = read_file_limited(cert_path)
    key_data = cert_data if os.fspath(key_path) == os.fspath(cert_path) else None
    if key_data is None:
        key_data = read_file_limited(key_path)
    certificates = parse_certificates(cert_data)
    key = parse_private_key(key_data)
    if not key_matches_certificate(key, certificates[0]):
        raise KeyMismatchError(
            "the private key does not belong to the certificate", path=key_path
        )
    return MatchingPair(
        certificate_pem=cert_data,
        key_pem=key_data,
        certificate=build_certificate_info(certificates, key),
    )
