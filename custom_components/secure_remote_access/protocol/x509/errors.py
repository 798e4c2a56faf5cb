"""The errors raised on purpose by the certificate and TLS modules.

Every one derives from `CertificateError`, whose ``reason`` is a stable
snake_case code suitable for translation keys and diagnostics.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
from typing import ClassVar

type StrPath = str | os.PathLike[str]


class CertificateError(Exception):
    """Base class of every error raised on purpose by the protocol modules."""

    reason: ClassVar[str] = "error"

    def __init__(self, message: str, *, path: StrPath | None = None) -> None:
        """Store the message and, when a file was involved, its path."""
        super().__init__(message)
        self.message = message
        self.path: str | None = os.fspath(path) if path is not None else None

    def __str__(self) -> str:
        """Return the message, prefixed with the path when known."""
        return f"{self.path}: {self.message}" if self.path else self.message


class CertificateFileError(CertificateError):
    """A certificate, key or CA bundle file cannot be read."""

    reason = "read_error"


class CertificateFileNotFoundError(CertificateFileError):
    """The file does not exist."""

    reason = "not_found"


class CertificatePermissionError(CertificateFileError):
    """The file exists but may not be read."""

    reason = "permission_denied"


class CertificateIsDirectoryError(CertificateFileError):
    """The path is a directory, not a file."""

    reason = "is_directory"


class CertificateNotRegularFileError(CertificateFileError):
    """The path is a FIFO, socket or device, not a regular file."""

    reason = "not_regular_file"


class CertificateFileEmptyError(CertificateFileError):
    """The file is empty or holds only white space."""

    reason = "empty"


class CertificateFileTooLargeError(CertificateFileError):
    """The file is larger than the accepted maximum."""

    reason = "too_large"


class CertificateFormatError(CertificateError):
    """The data holds no parseable certificate."""

    reason = "invalid_format"


class PrivateKeyFormatError(CertificateError):
    """The data holds no parseable private key, or several."""

    reason = "invalid_key"


class PrivateKeyEncryptedError(PrivateKeyFormatError):
    """The private key is encrypted; only unencrypted keys are supported."""

    reason = "key_encrypted"


class PairVerificationError(CertificateError):
    """A certificate + key pair failed verification before being installed."""

    reason = "verification_failed"


class KeyMismatchError(PairVerificationError):
    """The private key does not belong to the leaf certificate."""

    reason = "key_mismatch"


class NamesNotCoveredError(PairVerificationError):
    """The leaf certificate does not cover every expected name."""

    reason = "names_not_covered"

    def __init__(self, message: str, *, missing: Sequence[str]) -> None:
        """Remember the names that are not covered."""
        super().__init__(message)
        self.missing: tuple[str, ...] = tuple(missing)


class ChainInvalidError(PairVerificationError):
    """A certificate in the chain is not signed by the next one."""

    reason = "chain_invalid"


class CertificateNotYetValidError(PairVerificationError):
    """The leaf certificate's validity starts in the future."""

    reason = "not_yet_valid"


class CertificateExpiredError(PairVerificationError):
    """The leaf certificate has expired (or expires within the clock skew)."""

    reason = "expired"


class EndpointError(CertificateError):
    """A remote TLS endpoint could not be inspected."""

    reason = "endpoint_error"


class EndpointNameResolutionError(EndpointError):
    """The host name could not be resolved (or is not a valid host name)."""

    reason = "name_resolution_failed"


class EndpointConnectionError(EndpointError):
    """The TCP connection failed (unreachable network or host...)."""

    reason = "connection_failed"


class EndpointConnectionRefusedError(EndpointConnectionError):
    """Nothing listens on the port."""

    reason = "connection_refused"


class EndpointConnectionResetError(EndpointConnectionError):
    """The peer reset or closed the connection during the handshake."""

    reason = "connection_reset"


class EndpointTimeoutError(EndpointError):
    """The check did not finish within the timeout."""

    reason = "timeout"


class EndpointHandshakeError(EndpointError):
    """The TLS handshake failed (not TLS, protocol or cipher mismatch...)."""

    reason = "handshake_failed"


class EndpointNoCertificateError(EndpointError):
    """The peer completed the handshake without presenting a certificate."""

    reason = "no_certificate"
