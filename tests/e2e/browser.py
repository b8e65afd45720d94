"""Headless Debian chromium under Selenium, with the driver path given so nothing is downloaded."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"
_BROWSERS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")


def node_modules() -> str:
    """FIELDWATCH_NODE_MODULES (scripts/test.sh sets it), else the repository's .node/node_modules."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("FIELDWATCH_NODE_MODULES") or os.path.join(here, "..", "..", ".node", "node_modules")


def _skip(reason: str) -> None:
    print(f"SKIP reason: {reason}")
    pytest.skip(reason)


def start_browser(profile_dir: str, width: int = 1400, height: int = 1000) -> Any:
    """A fresh headless chromium (its own --user-data-dir) with the browser log recorded."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip("selenium is not installed (pip install -e .[test])")
    binary = next((path for path in _BROWSERS if os.path.exists(path)), None) or shutil.which("chromium")
    if binary is None or not os.path.exists(CHROMEDRIVER):
        _skip("Debian's chromium and chromium-driver are not installed (scripts/test.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
        "--disable-extensions", f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=os.path.join(profile_dir, "chromedriver.log"))
    return webdriver.Chrome(service=service, options=options)
