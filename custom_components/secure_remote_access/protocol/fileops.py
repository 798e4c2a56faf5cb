"""Durable file steps of a pair install: staging names, fsynced writes, cleanup.

No Home Assistant imports. Every function blocks (file system work). Files
are `Spot` s: a name in a `confined.Folder`, so that every step is relative
to a folder opened without following links.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import re
import secrets
import stat
from typing import Final

from .confined import Folder
from .x509.errors import StrPath
from .x509.read import MAX_FILE_SIZE, READ_FLAGS, read_at_most

_LOGGER = logging.getLogger(__name__)

PREVIOUS_SUFFIX: Final = ".previous"
PENDING_SUFFIX: Final = ".new"
KEY_MODE: Final = 0o600
DEFAULT_CERT_MODE: Final = 0o644
KEY_DIRECTORY_MODE: Final = 0o700
CERT_DIRECTORY_MODE: Final = 0o755
_MAX_EXISTING_SIZE: Final = 4 * MAX_FILE_SIZE
_RUN_PATTERN: Final = "[0-9a-f]{8}"


def previous_path(path: StrPath) -> Path:
    """Return where the previous version of ``path`` is kept."""
    return Path(f"{os.fspath(path)}{PREVIOUS_SUFFIX}")


def pending_path(path: StrPath, run: str = "") -> Path:
    """Return the staging file of install ``run`` renamed onto ``path`` when complete."""
    middle = f".{run}" if run else ""
    return Path(f"{os.fspath(path)}{middle}{PENDING_SUFFIX}")


def new_run() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class Spot:
    """A file name in an open, confined folder."""

    folder: Folder
    name: str

    @property
    def path(self) -> Path:
        """The real path (for messages)."""
        return self.folder.path / self.name

    def previous(self) -> Spot:
        """Where the previous version of this file is kept."""
        return Spot(self.folder, previous_path(self.name).name)

    def pending(self, run: str = "") -> Spot:
        """The staging file of install ``run``."""
        return Spot(self.folder, pending_path(self.name, run).name)

    def exists(self) -> bool:
        """Whether an entry of this name exists (a link counts, unfollowed)."""
        try:
            self.folder.lstat(self.name)
        except FileNotFoundError:
            return False
        return True


def staged_files(spot: Spot) -> list[Spot]:
    """Every staging file of ``spot`` (any install), newest first."""
    pattern = re.compile(
        rf"{re.escape(spot.name)}(?:\.{_RUN_PATTERN})?{re.escape(PENDING_SUFFIX)}"
    )
    found: list[tuple[float, Spot]] = []
    try:
        names = spot.folder.names()
    except OSError:
        return []
    for name in names:
        if pattern.fullmatch(name):
            try:
                mtime = spot.folder.lstat(name).st_mtime
            except OSError:
                mtime = 0.0
            found.append((mtime, Spot(spot.folder, name)))
    return [staged for _, staged in sorted(found, key=lambda item: -item[0])]


def read_existing(spot: Spot) -> bytes | None:
    """Return a file's bytes, None when it does not exist; OSError otherwise.

    A symbolic link (swapped in after the path was checked) is refused.
    """
    try:
        fd = spot.folder.open(spot.name, READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise OSError(err.errno, err.strerror, os.fspath(spot.path)) from err
    return _read_fd(fd, spot.path)


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be replaced now, or None (a check before a write).

    An existing file must be readable (it is kept as the backup) and its
    directory, or the nearest existing parent of a missing one, writable.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        pass
    except OSError as err:
        return f"cannot read the current file to keep it: {err.strerror or err}"
    else:
        try:
            _read_fd(fd, path)
        except OSError as err:
            return f"cannot read the current file to keep it: {err.strerror or err}"
    directory = path.parent
    while not directory.exists() and directory.parent != directory:
        directory = directory.parent
    if not directory.is_dir():
        return f"cannot create the directory {path.parent}: {directory} is a file"
    if not os.access(directory, os.W_OK | os.X_OK):
        reason = (
            "the file system is read-only"
            if _read_only(directory)
            else "permission denied"
        )
        return f"cannot write in {directory}: {reason}"
    return None


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _read_fd(fd: int, path: Path) -> bytes:
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(21, "not a regular file", os.fspath(path))
        data = read_at_most(fd, _MAX_EXISTING_SIZE)
    finally:
        os.close(fd)
    if data is None:
        raise OSError(27, "file too large", os.fspath(path))
    return data


def read_quietly(spot: Spot) -> bytes | None:
    """Return a file's bytes, or None when it is missing or unreadable."""
    try:
        return read_existing(spot)
    except OSError:
        return None


def existing_mode(spot: Spot) -> int | None:
    try:
        return stat.S_IMODE(spot.folder.lstat(spot.name).st_mode)
    except OSError:
        return None


def write_file(spot: Spot, data: bytes, mode: int) -> None:
    """Create ``spot`` afresh with ``mode`` from the first instant, write, fsync."""
    with contextlib.suppress(FileNotFoundError):
        spot.folder.unlink(spot.name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = spot.folder.open(spot.name, flags, mode)
    except OSError as err:
        raise OSError(err.errno, err.strerror, os.fspath(spot.path)) from err
    try:
        os.fchmod(fd, mode)  # exact mode whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(source: Spot, target: Spot) -> None:
    """Rename ``source`` onto ``target`` (in the same folder)."""
    assert source.folder is target.folder
    try:
        target.folder.replace(source.name, target.name)
    except OSError as err:
        raise OSError(err.errno, err.strerror, os.fspath(target.path)) from err


def install_file(spot: Spot, data: bytes, mode: int, run: str) -> None:
    """Atomically replace ``spot`` with ``data`` through its staging file."""
    staging = spot.pending(run)
    write_file(staging, data, mode)
    replace(staging, spot)


def fsync_directories(*spots: Spot) -> None:
    """Make renames durable; best effort (some file systems refuse)."""
    for folder in {id(spot.folder): spot.folder for spot in spots}.values():
        try:
            folder.fsync()
        except OSError as err:
            _LOGGER.debug("Cannot fsync directory %s: %s", folder.path, err)


def remove_stale(*spots: Spot) -> None:
    for spot in spots:
        try:
            spot.folder.unlink(spot.name)
        except FileNotFoundError:
            pass
        except OSError as err:
            _LOGGER.warning("Cannot remove stale file %s: %s", spot.path, err)
