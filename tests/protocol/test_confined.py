"""Writes that stay inside the allowed folders: real files and links on disk.

The allowed folder is ``ssl`` (as Home Assistant's /ssl or an allowlisted
directory); ``outside/victim.conf`` stands for any file Home Assistant must
never overwrite. Links are set, and swapped between the check and the write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any

import pytest

from custom_components.secure_remote_access.protocol import (
    confined,
    fileops,
    pairfiles as f,
)
from custom_components.secure_remote_access.protocol.confined import (
    PathNotAllowedError,
    confine,
    is_confined,
)
from custom_components.secure_remote_access.protocol.pairfiles import RecoveryStatus
from tests.fakes import certs

NAMES = ["example.test"]
VICTIM = b"# a configuration file Home Assistant must never overwrite\n"


@dataclass
class Disk:
    """``ssl/`` (allowed, with a live pair) and ``outside/victim.conf``."""

    root: Path
    ssl: Path
    outside: Path
    victim: Path
    old: certs.IssuedCertificate
    new: certs.IssuedCertificate

    @property
    def cert(self) -> Path:
        return self.ssl / "fullchain.pem"

    @property
    def key(self) -> Path:
        return self.ssl / "privkey.pem"

    def write(self) -> f.PairWriteResult:
        return f.write_certificate_pair(
            self.cert,
            self.key,
            self.new.fullchain_pem,
            self.new.key_pem,
            expected_names=NAMES,
            allowed=[self.ssl],
        )

    def listing(self) -> dict[str, bytes | str]:
        """Every entry under the root: file bytes, or where a link points."""
        found: dict[str, bytes | str] = {}
        for path in sorted(self.root.rglob("*")):
            name = str(path.relative_to(self.root))
            if path.is_symlink():
                found[name] = f"-> {os.readlink(path)}"
            elif path.is_file():
                found[name] = path.read_bytes()
        return found


@pytest.fixture(scope="module")
def pairs() -> tuple[certs.IssuedCertificate, certs.IssuedCertificate]:
    """The live pair and the one being written."""
    return (
        certs.issue(NAMES, key=certs.generate_key(slot=10)),
        certs.issue(NAMES, key=certs.generate_key(slot=11)),
    )


@pytest.fixture
def disk(
    tmp_path: Path, pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate]
) -> Disk:
    """A live pair in ssl/, a victim outside."""
    ssl, outside = tmp_path / "ssl", tmp_path / "outside"
    ssl.mkdir()
    outside.mkdir()
    victim = outside / "victim.conf"
    victim.write_bytes(VICTIM)
    old, new = pairs
    old.write(ssl)
    return Disk(tmp_path, ssl, outside, victim, old, new)


def test_a_key_link_to_outside_is_refused_and_nothing_is_written(disk: Disk) -> None:
    """``privkey.pem -> ../outside/victim.conf`` set after setup: refused, untouched."""
    disk.key.unlink()
    disk.key.symlink_to(Path("..") / "outside" / "victim.conf")
    before = disk.listing()
    with pytest.raises(PathNotAllowedError) as caught:
        disk.write()
    assert caught.value.path == os.fspath(disk.key)
    assert caught.value.allowed == [os.fspath(disk.ssl)]
    assert disk.listing() == before
    assert disk.victim.read_bytes() == VICTIM


@pytest.mark.parametrize("which", ["cert", "key"])
def test_recovery_and_the_pre_check_refuse_a_link_to_outside(
    disk: Disk, which: str
) -> None:
    """recover_pair and check_pair_writable refuse too, touching nothing."""
    link = disk.cert if which == "cert" else disk.key
    link.unlink()
    link.symlink_to(disk.victim)
    certs.write_file(fileops.pending_path(disk.outside / "victim.conf"), b"staged")
    before = disk.listing()
    with pytest.raises(PathNotAllowedError):
        f.recover_pair(disk.cert, disk.key, allowed=[disk.ssl])
    with pytest.raises(PathNotAllowedError):
        f.check_pair_writable(disk.cert, disk.key, allowed=[disk.ssl])
    assert disk.listing() == before


def test_a_link_inside_the_allowed_folders_stays_a_link(disk: Disk) -> None:
    """The README's promise: the link stays, the file it points to is replaced."""
    archive = disk.ssl / "archive"
    archive.mkdir()
    disk.key.rename(archive / "privkey1.pem")
    disk.key.symlink_to(Path("archive") / "privkey1.pem")
    result = disk.write()
    assert disk.key.is_symlink()
    assert (archive / "privkey1.pem").read_bytes() == disk.new.key_pem
    assert result.key_path == os.fspath(archive / "privkey1.pem")
    assert result.previous_kept
    assert (archive / "privkey1.pem.previous").read_bytes() == disk.old.key_pem
    assert disk.victim.read_bytes() == VICTIM


def test_previous_links_to_outside_are_replaced_not_followed(disk: Disk) -> None:
    """A ``.previous`` link planted outside is replaced by the backup itself."""
    previous = fileops.previous_path(disk.key)
    previous.symlink_to(disk.victim)
    fileops.previous_path(disk.cert).symlink_to(disk.victim)
    disk.write()
    assert not previous.is_symlink()
    assert previous.read_bytes() == disk.old.key_pem
    assert disk.victim.read_bytes() == VICTIM


def _swap_after_check(
    monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]
) -> list[Path]:
    """Run ``swap`` right after the write checked its paths (a race won)."""
    checked: list[Path] = []

    def confine_then_swap(path: Any, roots: Any) -> tuple[Path, Path]:
        result = confine(path, roots)
        checked.append(result[0])
        if len(checked) == 2:
            swap()
        return result

    monkeypatch.setattr(f, "confine", confine_then_swap)
    return checked


def test_a_folder_swapped_for_a_link_after_the_check(
    tmp_path: Path,
    pairs: tuple[certs.IssuedCertificate, certs.IssuedCertificate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ssl/live becomes a link to outside between check and write: refused."""
    ssl, outside = tmp_path / "ssl", tmp_path / "outside"
    live = ssl / "live"
    live.mkdir(parents=True)
    outside.mkdir()
    old, new = pairs
    old.write(live)

    def swap() -> None:
        live.rename(ssl / "moved")
        live.symlink_to(outside)

    checked = _swap_after_check(monkeypatch, swap)
    with pytest.raises(PathNotAllowedError):
        f.write_certificate_pair(
            live / "fullchain.pem",
            live / "privkey.pem",
            new.fullchain_pem,
            new.key_pem,
            expected_names=NAMES,
            allowed=[ssl],
        )
    assert checked == [live / "fullchain.pem", live / "privkey.pem"]
    assert list(outside.iterdir()) == []
    assert (ssl / "moved" / "privkey.pem").read_bytes() == old.key_pem


def test_a_key_swapped_for_a_link_after_the_check(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """privkey.pem becomes a link to outside between check and write: the link
    is never followed (the old key cannot be read: nothing is written)."""

    def swap() -> None:
        disk.key.unlink()
        disk.key.symlink_to(disk.victim)

    _swap_after_check(monkeypatch, swap)
    with pytest.raises(f.PairWriteError, match="cannot read the current file"):
        disk.write()
    assert disk.victim.read_bytes() == VICTIM
    assert disk.cert.read_bytes() == disk.old.fullchain_pem
    assert fileops.pending_path(disk.key).name not in os.listdir(disk.ssl)


def test_a_key_swapped_during_the_write_is_replaced_not_followed(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link appears while the new files are staged: the rename replaces
    the link itself; the file it points to keeps its bytes."""
    real_fsync = os.fsync
    swapped: list[bool] = []

    def fsync_then_swap(fd: int) -> None:
        real_fsync(fd)
        if not swapped and (disk.ssl / "privkey.pem").is_file():
            staged = [n for n in os.listdir(disk.ssl) if n.endswith(".new")]
            if any(
                n.startswith("fullchain.pem.") and "previous" not in n for n in staged
            ):
                swapped.append(True)
                disk.key.unlink()
                disk.key.symlink_to(disk.victim)

    monkeypatch.setattr(os, "fsync", fsync_then_swap)
    disk.write()
    assert swapped
    assert not disk.key.is_symlink()
    assert disk.key.read_bytes() == disk.new.key_pem
    assert disk.victim.read_bytes() == VICTIM


def test_without_openat_the_real_path_is_checked_again(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Platforms without dir_fd: the same refusals, the same installs."""
    monkeypatch.setattr(confined, "DIR_FD_SUPPORTED", False)
    result = disk.write()
    assert result.previous_kept
    assert disk.key.read_bytes() == disk.new.key_pem
    nested = disk.ssl / "new" / "deeper"
    f.write_certificate_pair(
        nested / "fullchain.pem",
        nested / "privkey.pem",
        disk.new.fullchain_pem,
        disk.new.key_pem,
        expected_names=NAMES,
        allowed=[disk.ssl],
    )
    assert (nested / "privkey.pem").read_bytes() == disk.new.key_pem
    assert f.recover_pair(disk.cert, disk.key, allowed=[disk.ssl]) is (
        RecoveryStatus.INTACT
    )
    disk.key.unlink()
    disk.key.symlink_to(disk.victim)
    with pytest.raises(PathNotAllowedError):
        disk.write()
    assert disk.victim.read_bytes() == VICTIM


def test_roots_are_compared_by_their_real_paths(tmp_path: Path) -> None:
    """A root that is itself a link (Home Assistant OS's /ssl) still holds its files."""
    real = tmp_path / "data" / "ssl"
    real.mkdir(parents=True)
    (tmp_path / "ssl").symlink_to(real)
    assert is_confined(tmp_path / "ssl" / "privkey.pem", [tmp_path / "ssl"])
    assert is_confined(real / "privkey.pem", [tmp_path / "ssl"])
    assert not is_confined(tmp_path / "ssl" / ".." / "x.pem", [tmp_path / "ssl"])
    assert not is_confined(tmp_path / "ssl2" / "x.pem", [tmp_path / "ssl"])


@pytest.fixture
def no_umask() -> Iterator[None]:
    """Folders are made with exact modes whatever the umask."""
    previous = os.umask(0o077)
    yield
    os.umask(previous)


def test_missing_folders_are_made_inside_the_root(disk: Disk, no_umask: None) -> None:
    """New folders (0700 for the key's) are made one by one under the root."""
    key = disk.ssl / "keys" / "private" / "privkey.pem"
    f.write_certificate_pair(
        disk.ssl / "certs" / "fullchain.pem",
        key,
        disk.new.fullchain_pem,
        disk.new.key_pem,
        expected_names=NAMES,
        allowed=[disk.ssl],
    )
    assert key.read_bytes() == disk.new.key_pem
    assert (key.parent.stat().st_mode & 0o777) == 0o700
    assert ((disk.ssl / "keys").stat().st_mode & 0o777) == 0o755
    assert ((disk.ssl / "certs").stat().st_mode & 0o777) == 0o755


def test_a_hard_link_to_outside_is_replaced_not_written_through(disk: Disk) -> None:
    """privkey.pem and fullchain.pem hard-linked to files outside (same
    inode: no link to resolve): the new pair replaces the names in ssl/, the
    files outside keep their bytes; nothing outside is read into a backup
    that does not belong together."""
    outside_cert = disk.outside / "cert.conf"
    outside_cert.write_bytes(VICTIM)
    disk.key.unlink()
    disk.cert.unlink()
    os.link(disk.victim, disk.key)
    os.link(outside_cert, disk.cert)
    disk.write()
    assert disk.victim.read_bytes() == VICTIM
    assert outside_cert.read_bytes() == VICTIM
    assert disk.key.read_bytes() == disk.new.key_pem
    assert not (disk.ssl / "privkey.pem.previous").exists()


@pytest.mark.parametrize("name", ["privkey.pem", "privkey.pem.previous"])
def test_a_directory_in_place_of_a_file_fails_the_write_cleanly(
    disk: Disk, name: str
) -> None:
    """A folder where a file belongs: a write error, the live pair intact."""
    (disk.ssl / name).unlink(missing_ok=True)
    (disk.ssl / name).mkdir()
    (disk.ssl / name / "keep").write_bytes(b"x")
    before = disk.listing()
    with pytest.raises(f.PairWriteError):
        disk.write()
    after = disk.listing()
    assert after["ssl/fullchain.pem"] == before["ssl/fullchain.pem"]
    assert after[f"ssl/{name}/keep"] == b"x"
