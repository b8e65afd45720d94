"""Take docs/status-page.png: `fieldwatch demo` in a temp folder, its page in headless chromium.

    .venv/bin/python scripts/page_screenshot.py [--out docs/status-page.png] [--wait 40] [--dark] [--query kiosk=1]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repo root: tests.* helpers

from tests.e2e.browser import start_browser  # noqa: E402


def main() -> int:
    """Run the demo, wait for it to have something to show, screenshot its page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "status-page.png"))
    parser.add_argument("--wait", type=float, default=40.0, help="seconds of demo before the shot")
    parser.add_argument("--dark", action="store_true", help="emulate a dark system theme")
    parser.add_argument("--query", default="", help="e.g. kiosk=1")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="fieldwatch-shot-")
    demo = subprocess.Popen(
        [sys.executable, "-m", "fieldwatch", "demo", "--listen", f"127.0.0.1:{port}", "--dir", workdir,
         "--silent-after", "20", "--offline-after", "8"],
        stdout=open(os.path.join(workdir, "demo.out"), "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    driver = start_browser(tempfile.mkdtemp(prefix="fieldwatch-shot-profile-"), width=1400, height=900)
    try:
        if args.dark:
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                   {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                driver.get(f"http://127.0.0.1:{port}/" + (f"?{args.query}" if args.query else ""))
                break
            except Exception:  # the demo is still starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        time.sleep(args.wait)  # let the demo's field misbehave a little: a silent device, a down address
        driver.save_screenshot(args.out)
        print(f"saved {os.path.abspath(args.out)}")
    finally:
        driver.quit()
        demo.send_signal(signal.SIGINT)
        demo.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
