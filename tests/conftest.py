"""Suite-wide test configuration.

Hypothesis: under CI (``CI=true``) examples are derandomized and unbounded in
time, so a run is reproducible and a loaded 2-core machine cannot make a test
flaky; locally they stay random, to keep finding new cases.

Under ``scripts/test.sh`` (and so in CI) ``OFFRECORD_REQUIRE_LIBOTR=1`` is set:
every skip in the suite means something it needs is missing (libotr, a server,
atheris), so any test that would be skipped fails instead, whatever its
directory or marker: a green run means every libotr, server and fuzz test ran.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("OFFRECORD_REQUIRE_LIBOTR") == "1"
    ):
        report.outcome = "failed"
        report.longrepr = f"test skipped while OFFRECORD_REQUIRE_LIBOTR=1: {report.longrepr}"
