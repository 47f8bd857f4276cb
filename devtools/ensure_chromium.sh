#!/usr/bin/env bash
# Makes sure a Chromium is installed for the browser tests (tests/test_ops_browser.py and the
# sandbox page tests). Debian's package only: the tests never download a browser of their own.
# Without root or apt-get it says so and exits 0: the browser tests then skip with a clear message.
set -euo pipefail

for name in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "chromium: found $(command -v "$name")"
    exit 0
  fi
done

if [ "$(id -u)" -ne 0 ]; then
  echo "chromium: not installed and not running as root; browser tests will be skipped" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed and no apt-get here; browser tests will be skipped" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "chromium: installed $(command -v chromium)"
