#!/usr/bin/env bash
# Installs Prometheus from Debian's package, for the tests of the Prometheus metric provider
# (internal/analysis/provider). Does nothing when a prometheus binary is already there. Needs root
# (or sudo) on Debian. It never starts Prometheus: each test starts its own on 127.0.0.1 at a free
# port and stops it. The package's own service is kept from starting during the install, so
# nothing listens on :9090 afterwards.
# Usage: scripts/prometheus.sh
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ]; then
	exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# A policy-rc.d that answers 101 tells the package scripts not to start the service (the way
# Debian's container images keep apt-get from starting daemons). One that is already there is
# left alone; ours is removed when the script ends.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
	trap '$sudo rm -f "$policy"' EXIT
fi

# A fresh machine may have no package lists yet, or stale ones: update when there is no
# candidate, and once more if the install still fails.
if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
	$sudo apt-get update
fi
if ! $sudo apt-get install -y --no-install-recommends prometheus; then
	$sudo apt-get update
	$sudo apt-get install -y --no-install-recommends prometheus
fi

# Some init systems start a service regardless of policy-rc.d; stop it, since the tests never use it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
	$sudo systemctl stop prometheus || true
fi
prometheus --version 2>&1 | head -n 1
