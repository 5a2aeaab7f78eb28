"""Open an HTML report in headless Chromium (Debian package ``chromium``) with no network and
take a full-page screenshot, to look at what a reader sees.

    python tools/screenshot.py report.html -o report.png [--width 1200] [--height 6000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 6000) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium is not installed (apt-get install chromium)")
    # --proxy-server to a closed port: any request the page made would fail, and show
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--proxy-server=127.0.0.1:9", f"--window-size={width},{height}", f"--screenshot={out}",
                    page.resolve().as_uri()], check=True, capture_output=True, timeout=180)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=6000)
    args = ap.parse_args()
    screenshot(args.page, args.output, args.width, args.height)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
