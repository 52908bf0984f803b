"""Fixtures of the integration tests: real chat servers on loopback, started
and stopped by the tests (ngircd for IRC).

A server that is not installed skips its tests, except under
``scripts/test.sh`` (``OFFRECORD_REQUIRE_LIBOTR=1`` or
``OFFRECORD_REQUIRE_SERVERS=1``), where that is a failure: the CI run must
really talk to the servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.ngircd import Ngircd, find_ngircd


def servers_required() -> bool:
    return "1" in (os.environ.get("OFFRECORD_REQUIRE_SERVERS"),
                   os.environ.get("OFFRECORD_REQUIRE_LIBOTR"))  # fmt: skip


def missing(what: str) -> None:
    """Skip, or fail when the servers are required."""
    message = f"{what} is not installed (scripts/bootstrap.sh --system installs it)"
    if servers_required():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def ngircd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ngircd]:
    executable = find_ngircd()
    if executable is None:
        missing("ngircd")
        raise AssertionError("unreachable")
    server = Ngircd(Path(tmp_path_factory.mktemp("ngircd")), executable)
    with server:
        yield server
