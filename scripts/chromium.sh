#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard's browser tests (test/web) and its benchmark
# (bench/dashboard). Does nothing when chromium is already there. Needs root (or sudo) on Debian.
# Usage: scripts/chromium.sh
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
	exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq chromium
