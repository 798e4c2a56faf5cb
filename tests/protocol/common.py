"""Shared by the certificate and TLS tests: the names of the shared leaf."""

from __future__ import annotations

import pytest

from custom_components.secure_remote_access.protocol.x509 import CertificateError

NAMES = ["example.test", "www.example.test", "127.0.0.1", "::1"]


def error_reason(err: pytest.ExceptionInfo[CertificateError]) -> str:
    """The stable reason code of a raised `CertificateError`."""
    return err.value.reason
