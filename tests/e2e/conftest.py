"""End-to-end fixtures' helpers: each test's call report on its item, so a fixture can tell it failed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """`item.rep_call`: the report of the test's call phase (the browser test keeps a screenshot on failure)."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
