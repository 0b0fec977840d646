#!/usr/bin/env bash
# The network-namespace tests (tests/harness/netns.py) need `ip` and `tc` (iproute2) and
# root. Installs iproute2 with apt-get when it is missing and this runs as root; otherwise
# says what is missing. Idempotent. Exits 1 only when CONTINUUM_REQUIRE_NETNS=1 (CI) and
# the tools cannot be had: there the tests must run, not skip.
set -u

have_tools() { command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; }
required() { [ -n "${CONTINUUM_REQUIRE_NETNS:-}" ] && [ "${CONTINUUM_REQUIRE_NETNS}" != 0 ]; }

if have_tools; then
  echo "netns tools: ip and tc found"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "netns tools: installing iproute2 (ip, tc)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
fi
if have_tools; then
  echo "netns tools: ip and tc installed"
  exit 0
fi
echo "netns tools: ip/tc (iproute2) missing and not installable here (needs root and" \
  "apt-get); the network-namespace tests will skip" >&2
if required; then
  echo "netns tools: CONTINUUM_REQUIRE_NETNS=1: failing instead" >&2
  exit 1
fi
exit 0
