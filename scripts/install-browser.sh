#!/usr/bin/env bash
# Debian's Chromium for the browser tests of the web page (tests/test_web.py drives it with Playwright;
# `playwright install` is never used), plus an emoji and a Japanese font so that the screenshots show the
# status icons and the Japanese labels. Idempotent: does nothing when all of it is there. Called by
# `make install` (the Makefile's stamp recipe, so `make test` and `make up` run it); safe to run by hand.
set -euo pipefail

PACKAGES="chromium chromium-driver fonts-noto-color-emoji fonts-ipafont-gothic"

missing() {
    [ -x /usr/bin/chromium ] || return 0
    command -v dpkg-query >/dev/null 2>&1 || return 1
    for package in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || return 0
    done
    return 1
}

if ! missing; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $PACKAGES with apt-get (for the browser tests)"
    # shellcheck disable=SC2086
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES) >/dev/null
    [ -x /usr/bin/chromium ] && exit 0
fi
if [ -x /usr/bin/chromium ]; then
    echo "WARNING: could not install the fonts ($PACKAGES): screenshots may show boxes for emoji" >&2
    exit 0
fi
cat >&2 <<'MSG'
WARNING: /usr/bin/chromium is not installed and could not be installed automatically (this needs root and
apt-get). The browser tests of the web page (tests/test_web.py) will be skipped.
Install it with your package manager, e.g.  sudo apt-get install -y chromium chromium-driver
MSG
exit 0
