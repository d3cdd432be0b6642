#!/usr/bin/env bash
# Debian's chromium for the @pytest.mark.browser tests (tests/inference/test_browser.py, driven by Playwright).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || true)"
  exit 0
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
/usr/bin/chromium --version || true
