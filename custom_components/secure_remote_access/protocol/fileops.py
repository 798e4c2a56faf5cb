"""Durable file steps of a pair install: staging names, fsynced writes, cleanup.

No Home Assistant imports. Every function blocks (file system work).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
import re
import secrets
import stat
from typing import Final

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


def read_existing(path: Path) -> bytes | None:
    """Return a file's bytes, None when it does not exist; OSError otherwise."""
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        return None
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


def read_quietly(path: Path) -> bytes | None:
    """Return a file's bytes, or None when it is missing or unreadable."""
    try:
        return read_existing(path)
    except OSError:
        return None


def existing_mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def write_file(path: Path, data: bytes, mode: int) -> None:
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


def install_file(path: Path, data: bytes, mode: int, run: str) -> None:
    """Atomically replace ``path`` with ``data`` through its staging file."""
    staging = pending_path(path, run)
    write_file(staging, data, mode)
    os.replace(staging, path)


def fsync_directories(*paths: Path) -> None:
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


def ensure_directory(directory: Path, mode: int) -> None:
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


def remove_stale(*paths: Path) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            _LOGGER.warning("Cannot remove stale file %s: %s", path, err)
