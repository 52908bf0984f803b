"""Fixtures of the regression tests: the libotr peer program, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.build import build_libotr_peer


@pytest.fixture(scope="session")
def libotr_exe() -> Path:
    try:
        return build_libotr_peer()
    except RuntimeError as exc:  # libotr5-dev missing: scripts/test.sh installs it
        pytest.skip(str(exc))
