"""Bounded, blocking reads of certificate, key and CA bundle files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import os
import stat
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from .errors import (
    CertificateError,
    CertificateFileEmptyError,
    CertificateFileError,
    CertificateFileNotFoundError,
    CertificateFileTooLargeError,
    CertificateIsDirectoryError,
    CertificateNotRegularFileError,
    CertificatePermissionError,
    KeyMismatchError,
    StrPath,
)
from .model import CertificateInfo
from .parse import build_certificate_info, parse_certificates, parse_private_key
from .verify import key_matches_certificate

MAX_FILE_SIZE: Final = 1024 * 1024
"""Largest certificate or key file accepted (1 MiB)."""


READ_FLAGS: Final = (
    os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
)
"""Flags to open a file for a bounded read (never blocks on a FIFO)."""


def read_at_most(fd: int, max_size: int) -> bytes | None:
    """Every byte of ``fd``, or None as soon as there are more than ``max_size``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, max_size + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_size:
            return None
    return b"".join(chunks)


def read_file_limited(path: StrPath, *, max_size: int = MAX_FILE_SIZE) -> bytes:
    """Read a whole regular file of at most ``max_size`` bytes. Blocking.

    Raises a `CertificateFileError` subclass for a missing, unreadable, empty
    (white space only), oversized or non-regular file.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError as err:
        raise CertificateFileNotFoundError("file not found", path=path) from err
    except PermissionError as err:
        raise CertificatePermissionError("permission denied", path=path) from err
    except IsADirectoryError as err:
        raise CertificateIsDirectoryError("is a directory", path=path) from err
    except NotADirectoryError as err:
        raise CertificateFileNotFoundError(
            "a parent of the path is not a directory", path=path
        ) from err
    except OSError as err:
        raise CertificateFileError(f"cannot open: {err.strerror}", path=path) from err
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise CertificateIsDirectoryError("is a directory", path=path)
        if not stat.S_ISREG(info.st_mode):
            raise CertificateNotRegularFileError("not a regular file", path=path)
        if info.st_size > max_size:
            raise CertificateFileTooLargeError(
                f"{info.st_size} bytes, more than the {max_size} accepted", path=path
            )
        data = read_at_most(fd, max_size)
        if data is None:
            raise CertificateFileTooLargeError(
                f"more than the {max_size} bytes accepted", path=path
            )
    except OSError as err:
        raise CertificateFileError(f"cannot read: {err.strerror}", path=path) from err
    finally:
        os.close(fd)
    if not data.strip():
        raise CertificateFileEmptyError("file is empty", path=path)
    return data


def read_certificate_file(
    path: StrPath, key_path: StrPath | None = None
) -> CertificateInfo:
    """Inspect a PEM (one or more certificates) or DER file. Blocking.

    With ``key_path``, also report whether that private key matches the leaf.
    """
    certificates = read_certificates(path)
    key = read_private_key_file(key_path) if key_path is not None else None
    return build_certificate_info(certificates, key)


def parse_file[T](
    path: StrPath, parse: Callable[[bytes], T], *, max_size: int = MAX_FILE_SIZE
) -> T:
    """Read ``path`` (bounded) and parse its bytes; errors name the file. Blocking."""
    data = read_file_limited(path, max_size=max_size)
    try:
        return parse(data)
    except CertificateError as err:
        err.path = os.fspath(path)
        raise


def read_certificates(path: StrPath) -> list[x509.Certificate]:
    """Load the certificates of a PEM or DER file, leaf first. Blocking."""
    return parse_file(path, parse_certificates)


def read_private_key_file(path: StrPath) -> PrivateKeyTypes:
    """Load an unencrypted private key file (PEM or DER). Blocking."""
    return parse_file(path, parse_private_key)


@dataclass(frozen=True, slots=True, kw_only=True)
class PairInfo:
    """A live pair read back for monitoring (no secrets).

    ``key_problem`` is the `CertificateError.reason` when the key file could
    not be used (``not_found``, ``invalid_key``...); ``key_matches`` is then False.
    """

    certificate: CertificateInfo
    key_matches: bool
    key_problem: str | None = None


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
