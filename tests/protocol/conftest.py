"""Fixtures of the protocol tests: a leaf of the shared private PKI, its CA bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes import certs
from tests.protocol.common import NAMES


@pytest.fixture(scope="module")
def leaf() -> certs.IssuedCertificate:
    """Return a leaf from the shared private PKI, EC P-256."""
    return certs.issue(NAMES)


@pytest.fixture
def ca_bundle(tmp_path: Path) -> Path:
    """Write the shared root as a CA bundle."""
    return certs.shared_pki().write_bundle(tmp_path / "ca.pem")
