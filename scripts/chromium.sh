#!/usr/bin/env bash
# Installs Debian's chromium if it is missing (the browser tests — the OpenFeature web SDK suite,
# the dashboard's tests and its benchmark — drive it with chromedp; no browser download is
# reachable), and prints its path. Idempotent: safe to run from any script. Needs root or sudo.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
	echo "chromium not found: installing Debian's chromium package" >&2
	sudo=""
	if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
fi
command -v chromium
