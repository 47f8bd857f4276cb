"""Where the system's Chromium is (Debian's `chromium` package): the browser tests drive it with
Playwright and never download a browser of their own."""

from __future__ import annotations

import os
import shutil

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """CHROMIUM_PATH if set and executable, else the first Chromium on PATH or in /usr/bin."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured and os.access(configured, os.X_OK):
        return configured
    for name in CANDIDATES:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if found:
            return found
    return None


# How the browser tests start it: headless on a machine with no screen and a closed network (without
# the background-networking flags Chromium's own connections are refused, many at a time).
HEADLESS_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
