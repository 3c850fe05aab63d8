#!/bin/sh
# System packages the platform needs beyond the venv: bubblewrap (`bwrap`) sandboxes every job, and
# util-linux's `prlimit`/`setpriv` set its limits and drop it to an unprivileged uid (util-linux is part of
# every Debian/Ubuntu base system). Idempotent: does nothing when `bwrap` is already there.
# Called by `make install` (the Makefile's stamp recipe); safe to run by hand.
set -eu

if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing bubblewrap (the job sandbox) with apt-get"
    log=$(mktemp)
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) >"$log" 2>&1; then
        rm -f "$log"
        command -v bwrap >/dev/null 2>&1 && exit 0
    else
        cat "$log" >&2
        rm -f "$log"
    fi
fi
cat >&2 <<'MSG'
WARNING: bubblewrap (`bwrap`) is not installed and could not be installed automatically (that needs root
and apt-get). The GPU runner sandboxes every job with it and refuses to start without it. Install it with
your package manager, e.g.  sudo apt-get install -y bubblewrap
or, on a development machine only, let jobs run without isolation: LB_RUNNER_ALLOW_UNSANDBOXED=true
MSG
exit 0
