#!/usr/bin/env bash
# Install the Debian packages clusternb needs for a purpose, only when missing.
#   scripts/system-deps.sh lab    python3 with venv
#   scripts/system-deps.sh test   + redis-server, chromium (browser tests)
#   scripts/system-deps.sh bench  + wrk (HTTP load generator)
# As root it uses apt-get; otherwise passwordless sudo; otherwise it stops and says what to install.
set -euo pipefail
purpose=${1:-lab}

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
python_ok() {
  have_cmd python3 && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
python_ok || need+=(python3 python3-venv python3-dev)
if [ "$purpose" = test ] || [ "$purpose" = bench ]; then
  have_cmd redis-server || need+=(redis-server)
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
[ "$purpose" = bench ] && { have_cmd wrk || need+=(wrk); }
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif have_cmd sudo && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "clusternb: these Debian packages are missing: ${need[*]}" >&2
  echo "clusternb: install them as root (apt-get install ${need[*]}) and run make again." >&2
  exit 1
fi
echo "clusternb: installing ${need[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
