"""Debian's chromium, driven by Playwright, offline: the dashboard's browser test and its screenshot.

``python -m sandbox.browser [URL] [--out PATH]`` saves a full-page screenshot of the dashboard of a
running ``make run`` (README's docs/dashboard.png is one). No ``playwright install``: the browser is
the system's ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it for the tests).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Headless, no sandbox (root in CI), and none of the first-run or background traffic that would go online.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}


def screenshot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
            page.goto(url, timeout=30_000)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:7071/api/manage/dashboard")
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    screenshot(args.url, args.out)
    print(f"Saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
