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
   covered, dates sane); on failure raise and touch nothing; resolve the
   real paths (links followed) and refuse any outside the allowed folders
   (`confined.PathNotAllowedError`), then open their folders without
   following links: every later step is relative to those folders
   (`protocol/confined.py`);
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

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import logging
import os
from pathlib import Path
import threading
from typing import Final

from .confined import Folder, confine, open_folder
from .fileops import (
    CERT_DIRECTORY_MODE,
    DEFAULT_CERT_MODE,
    KEY_DIRECTORY_MODE,
    KEY_MODE,
    Spot,
    existing_mode,
    fsync_directories,
    install_file,
    new_run,
    read_existing,
    read_quietly,
    remove_stale,
    replace,
    staged_files,
    unwritable,
    write_file,
)
from .x509 import (
    DEFAULT_CLOCK_SKEW,
    CertificateError,
    CertificateInfo,
    StrPath,
    build_certificate_info,
    key_matches_certificate,
    parse_certificates,
    parse_private_key,
    verify_certificate_pair,
)

_LOGGER = logging.getLogger(__name__)

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


# ------------------------------------------------------------ low-level I/O


def _real_pair(
    cert_path: StrPath, key_path: StrPath, allowed: Sequence[StrPath]
) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    """The real files of the pair and their allowed roots: a symbolic link
    (certbot's live/) is followed, so that the file it points to is the one
    replaced, not the link. `PathNotAllowedError` when one leaves ``allowed``,
    `PairWriteError` when both lead to the same file (a link swapped in)."""
    cert, key = confine(cert_path, allowed), confine(key_path, allowed)
    if cert[0] == key[0]:
        raise PairWriteError(
            "the certificate and the key lead to the same file; they need "
            "different files",
            path=key_path,
        )
    return cert, key


@contextmanager
def _open_pair(
    cert_path: StrPath,
    key_path: StrPath,
    allowed: Sequence[StrPath],
    *,
    create: bool,
) -> Iterator[tuple[Spot, Spot]]:
    """The pair's files in their folders, opened without following links.

    ``create`` makes missing folders (0700 for the key's). OSError when a
    folder cannot be opened or made.
    """
    (cert, cert_root), (key, key_root) = _real_pair(cert_path, key_path, allowed)
    folders: list[Folder] = []
    try:
        key_folder = open_folder(
            key.parent,
            key_root,
            create=(KEY_DIRECTORY_MODE, CERT_DIRECTORY_MODE) if create else None,
        )
        folders.append(key_folder)
        cert_folder = key_folder
        if cert.parent != key.parent:
            cert_folder = open_folder(
                cert.parent,
                cert_root,
                create=(CERT_DIRECTORY_MODE, CERT_DIRECTORY_MODE) if create else None,
            )
            folders.append(cert_folder)
        yield Spot(cert_folder, cert.name), Spot(key_folder, key.name)
    finally:
        for folder in folders:
            folder.close()


def check_pair_writable(
    cert_path: StrPath, key_path: StrPath, *, allowed: Sequence[StrPath]
) -> None:
    """Raise `PairWriteError` unless the pair can be installed at these paths. Blocking.

    Run before anything is ordered: both real paths must be inside
    ``allowed`` (`PathNotAllowedError`), an existing file must be readable
    (it is kept as the backup) and its directory, or the nearest existing
    parent of a missing one, writable.
    """
    for path, _root in _real_pair(cert_path, key_path, allowed):
        if (problem := unwritable(path)) is not None:
            raise PairWriteError(problem, path=path)


def _install_previous(
    cert: Spot, key: Spot, cert_data: bytes, key_data: bytes, mode: int, run: str
) -> None:
    """Make ``(cert_data, key_data)`` the ``.previous`` pair: stage both, then rename.

    On an error, a half-replaced ``.previous`` pair is removed: no backup is
    better than a backup whose halves do not belong together.
    """
    previous_cert, previous_key = cert.previous(), key.previous()
    try:
        write_file(previous_key.pending(run), key_data, KEY_MODE)
        write_file(previous_cert.pending(run), cert_data, mode)
        replace(previous_key.pending(run), previous_key)
        replace(previous_cert.pending(run), previous_cert)
    except OSError:
        if not _pair_matches(read_quietly(previous_cert), read_quietly(previous_key)):
            remove_stale(previous_cert, previous_key)
        raise


def _staging_files(cert: Spot, key: Spot) -> list[Spot]:
    """The staging files of every install of this pair."""
    return [
        staged
        for spot in (cert, key, cert.previous(), key.previous())
        for staged in staged_files(spot)
    ]


def _run_staging_files(cert: Spot, key: Spot, run: str) -> tuple[Spot, ...]:
    """The staging files of one install."""
    return tuple(
        spot.pending(run) for spot in (cert, key, cert.previous(), key.previous())
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
    allowed: Sequence[StrPath],
    now: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> PairWriteResult:
    """Verify, then atomically install a full chain and its key. Blocking.

    The bytes are written as given. Verification failures raise
    `verify_certificate_pair`'s errors (`PairVerificationError` subclasses,
    `CertificateFormatError`, `PrivateKeyFormatError`) before anything is
    touched; a real path outside ``allowed`` raises `PathNotAllowedError`
    before anything is touched; I/O failures raise `PairWriteError` (see the
    module docstring). Missing directories are created: 0700 for the key's,
    0755 otherwise. The key is 0600; the certificate keeps its current mode
    (new: 0644).
    """
    info = verify_certificate_pair(
        fullchain_pem,
        key_pem,
        expected_names=expected_names,
        now=now,
        clock_skew=clock_skew,
    )
    with _PAIR_LOCK:
        try:
            with _open_pair(cert_path, key_path, allowed, create=True) as (cert, key):
                previous_kept = _install_pair(
                    cert, key, fullchain_pem, key_pem, new_run()
                )
        except OSError as err:  # a folder that cannot be opened or made
            raise PairWriteError(
                f"cannot write the new pair: {err.strerror or err}",
                path=err.filename,
            ) from err
    return PairWriteResult(
        certificate=info,
        cert_path=os.fspath(cert.path),
        key_path=os.fspath(key.path),
        previous_kept=previous_kept,
    )


def _install_pair(
    cert: Spot, key: Spot, fullchain_pem: bytes, key_pem: bytes, run: str
) -> bool:
    """Steps 2 to 4 of the install; True when the old pair was kept as .previous."""
    try:
        old_cert = read_existing(cert)
        old_key = read_existing(key)
    except OSError as err:
        raise PairWriteError(
            f"cannot read the current file to keep it: {err.strerror or err}",
            path=err.filename,
        ) from err
    cert_mode = existing_mode(cert) or DEFAULT_CERT_MODE
    previous_kept = False
    try:
        if _pair_matches(old_cert, old_key):
            assert old_cert is not None and old_key is not None
            _install_previous(cert, key, old_cert, old_key, cert_mode, run)
            previous_kept = True
        write_file(key.pending(run), key_pem, KEY_MODE)
        write_file(cert.pending(run), fullchain_pem, cert_mode)
        fsync_directories(cert, key)  # staged files durable before any rename
    except OSError as err:
        remove_stale(*_run_staging_files(cert, key, run))
        raise PairWriteError(
            f"cannot write the new pair: {err.strerror or err}", path=err.filename
        ) from err

    replaced: list[tuple[Spot, bytes | None, int]] = []
    try:
        replace(key.pending(run), key)
        replaced.append((key, old_key, KEY_MODE))
        replace(cert.pending(run), cert)
    except OSError as err:
        rolled_back = _roll_back(replaced, run)
        if rolled_back:  # else keep them: recover_pair may roll forward with them
            remove_stale(*_run_staging_files(cert, key, run))
        raise PairWriteError(
            f"cannot put the new pair in place: {err.strerror or err}"
            + ("" if rolled_back else "; the old pair could not be restored"),
            path=err.filename,
            recovery_needed=not rolled_back,
        ) from err
    fsync_directories(cert, key)
    return previous_kept


def _roll_back(replaced: list[tuple[Spot, bytes | None, int]], run: str) -> bool:
    """Put the old bytes back where a new file was renamed in; True on success."""
    try:
        for spot, old, mode in reversed(replaced):
            if old is None:
                spot.folder.unlink(spot.name)
            else:
                install_file(spot, old, mode, run)
    except OSError as err:
        _LOGGER.error(
            "Rolling back %s failed: %s", [spot.path for spot, _, _ in replaced], err
        )
        return False
    return True


def _roll_forward(
    cert: Spot, key: Spot, live_cert: bytes | None, live_key: bytes | None
) -> bool:
    """Complete an interrupted install of a pair with one staged file; True if done."""
    for staged in staged_files(cert):
        if _pair_matches(read_quietly(staged), live_key, require_chain=True):
            replace(staged, cert)
            return True
    for staged in staged_files(key):
        if _pair_matches(live_cert, read_quietly(staged), require_chain=True):
            replace(staged, key)
            return True
    return False


def _recover_previous(cert: Spot, key: Spot) -> None:
    """Complete an interrupted install of the .previous pair; drop a mismatched one."""
    previous_cert, previous_key = cert.previous(), key.previous()
    old_cert, old_key = read_quietly(previous_cert), read_quietly(previous_key)
    if old_cert is None and old_key is None:
        return
    if _pair_matches(old_cert, old_key):
        return
    if _roll_forward(previous_cert, previous_key, old_cert, old_key):
        _LOGGER.warning("Completed the interrupted backup %s", previous_cert.path)
        return
    _LOGGER.warning(
        "Removing the backup %s / %s: its certificate and key do not match",
        previous_cert.path,
        previous_key.path,
    )
    remove_stale(previous_cert, previous_key)


def recover_pair(
    cert_path: StrPath, key_path: StrPath, *, allowed: Sequence[StrPath]
) -> RecoveryStatus:
    """Make the live pair match again after a crash or failed write. Blocking.

    In order: a matching live pair is left alone (INTACT); a staged file that
    completes a matching pair with the other live file is renamed in
    (ROLLED_FORWARD); with no live file at all nothing is done (ABSENT);
    otherwise a matching ``.previous`` pair is copied back (RESTORED_PREVIOUS).
    The ``.previous`` pair is completed the same way, or removed when its
    halves do not match. Stale staging files are removed. Raises
    `PathNotAllowedError` (nothing touched) when a real path leaves
    ``allowed``, `PairRecoveryError` when no matching pair can be found or
    written.
    """
    with _PAIR_LOCK:
        try:
            with _open_pair(cert_path, key_path, allowed, create=False) as (cert, key):
                return _recover(cert, key)
        except FileNotFoundError:
            return RecoveryStatus.ABSENT  # a folder of the pair does not exist
        except OSError as err:
            raise PairRecoveryError(
                f"cannot restore a matching pair: {err.strerror or err}",
                path=err.filename,
            ) from err


def _recover(cert: Spot, key: Spot) -> RecoveryStatus:
    live_cert, live_key = read_quietly(cert), read_quietly(key)
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
            old_cert = read_quietly(cert.previous())
            old_key = read_quietly(key.previous())
            if not _pair_matches(old_cert, old_key, require_chain=True):
                raise PairRecoveryError(
                    "the live pair does not match and no matching previous pair "
                    "or staged file exists",
                    path=cert.path,
                )
            assert old_cert is not None and old_key is not None
            cert_mode = existing_mode(cert.previous()) or DEFAULT_CERT_MODE
            run = new_run()
            write_file(key.pending(run), old_key, KEY_MODE)
            write_file(cert.pending(run), old_cert, cert_mode)
            replace(key.pending(run), key)
            replace(cert.pending(run), cert)
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
        fsync_directories(cert, key)
    remove_stale(*_staging_files(cert, key))
    if changed:
        _LOGGER.warning(
            "Certificate pair %s / %s: %s", cert.path, key.path, status.value
        )
    return status
