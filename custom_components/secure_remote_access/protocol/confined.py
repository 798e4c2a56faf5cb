"""Files written only inside the allowed folders, whatever links appear meanwhile.

No Home Assistant imports; every function blocks (file system work).

A configured path may be a symbolic link: the file it points to is written
(certbot's ``live/`` links), as long as that file is inside one of the
allowed folders (the caller's roots: Home Assistant's configuration
directory, ``/ssl``, ``allowlist_external_dirs``). The real path is resolved
just before the write and checked against the roots; the folder that holds
it is then opened component by component from its root without following
any link (``O_NOFOLLOW`` on each, ``openat`` through the previous folder's
descriptor), and every later step names files relative to that descriptor.
A link swapped in after the check (a folder, or the file itself) is never
followed: the walk or the read refuses it, and a rename replaces the link
itself, never what it points to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import errno
import os
from pathlib import Path
import stat
from typing import Final

from .x509.errors import CertificateError, StrPath

#: openat and friends: every step relative to a folder's descriptor.
DIR_FD_SUPPORTED: Final = {os.open, os.mkdir, os.rename, os.unlink, os.stat} <= (
    os.supports_dir_fd
) and os.scandir in os.supports_fd
NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
)


class PathNotAllowedError(CertificateError):
    """A path leads outside the allowed folders (now, maybe not when it was set)."""

    reason = "path_not_allowed"

    def __init__(self, path: StrPath, allowed: Iterable[StrPath]) -> None:
        """Name the path and the folders that are allowed."""
        self.allowed = [os.fspath(root) for root in allowed]
        super().__init__(
            "leads outside the allowed folders (" + ", ".join(self.allowed) + ")",
            path=path,
        )


def confine(path: StrPath, roots: Sequence[StrPath]) -> tuple[Path, Path]:
    """The real path of ``path`` (links followed) and the allowed root it is in.

    Raises `PathNotAllowedError` when it is in none of ``roots``.
    """
    real = Path(os.path.realpath(os.fspath(path)))
    for root in roots:
        real_root = Path(os.path.realpath(os.fspath(root)))
        if real.is_relative_to(real_root):
            return real, real_root
    raise PathNotAllowedError(path, roots)


def is_confined(path: StrPath, roots: Sequence[StrPath]) -> bool:
    """Whether the real path of ``path`` is inside one of ``roots``."""
    try:
        confine(path, roots)
    except PathNotAllowedError:
        return False
    return True


class Folder:
    """An open folder inside an allowed root, reached without following a link.

    Names passed to its methods are single file names in it. Without
    ``openat`` support (`DIR_FD_SUPPORTED`) the real path is used instead.
    """

    def __init__(self, path: Path, fd: int | None) -> None:
        """Hold ``fd`` (closed by `close`)."""
        self.path = path
        self.fd = fd

    def at(self, name: str) -> str:
        """What the ``os`` functions get for ``name`` (with ``dir_fd=self.fd``)."""
        return name if self.fd is not None else os.fspath(self.path / name)

    def open(self, name: str, flags: int, mode: int = 0o777) -> int:
        """Open ``name`` in this folder; a symbolic link is refused (ELOOP)."""
        return os.open(self.at(name), flags | NOFOLLOW, mode, dir_fd=self.fd)

    def lstat(self, name: str) -> os.stat_result:
        """The entry ``name`` itself (a link is not followed)."""
        return os.stat(self.at(name), dir_fd=self.fd, follow_symlinks=False)

    def replace(self, source: str, target: str) -> None:
        """Rename ``source`` onto ``target`` (a link at ``target`` is replaced)."""
        os.replace(
            self.at(source), self.at(target), src_dir_fd=self.fd, dst_dir_fd=self.fd
        )

    def unlink(self, name: str) -> None:
        """Remove ``name``."""
        os.unlink(self.at(name), dir_fd=self.fd)

    def names(self) -> list[str]:
        """The names in this folder."""
        with os.scandir(self.fd if self.fd is not None else self.path) as entries:
            return [entry.name for entry in entries]

    def fsync(self) -> None:
        """Make renames in this folder durable."""
        fd = self.fd
        own = fd is None
        if fd is None:
            fd = os.open(self.path, _DIRECTORY_FLAGS)
        try:
            os.fsync(fd)
        finally:
            if own:
                os.close(fd)

    def close(self) -> None:
        """Release the descriptor."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def open_folder(
    directory: Path, root: Path, *, create: tuple[int, int] | None = None
) -> Folder:
    """Open ``directory`` (a real path inside the real ``root``) step by step.

    ``create``: make missing folders, the last with the first mode, the
    others with the second. A component that is a link now raises
    `PathNotAllowedError`; other failures raise OSError.
    """
    if not DIR_FD_SUPPORTED:
        if create is not None and not directory.is_dir():
            os.makedirs(directory, create[1])
            os.chmod(directory, create[0])
        if Path(os.path.realpath(directory)) != directory:
            raise PathNotAllowedError(directory, [root])
        return Folder(directory, None)
    fd = os.open(root, _DIRECTORY_FLAGS)
    parts = directory.relative_to(root).parts
    try:
        for index, part in enumerate(parts):
            try:
                child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if create is None:
                    raise
                mode = create[0] if index == len(parts) - 1 else create[1]
                os.mkdir(part, mode, dir_fd=fd)
                child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
                os.fchmod(child, mode)  # exact mode whatever the umask
            except OSError as err:
                if err.errno == errno.ELOOP or _is_link(fd, part):
                    raise PathNotAllowedError(directory, [root]) from err
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return Folder(directory, fd)


def _is_link(fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
