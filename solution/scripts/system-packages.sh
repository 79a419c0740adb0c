#!/usr/bin/env bash
# What `make test` needs that pip cannot install: Debian packages, installed when missing.
# As root (or with password-less sudo) they are installed with apt-get; otherwise, or when that
# fails, one line says the exact command and the exit status is 1, before any test runs.
set -euo pipefail

# Chromium drives the Swagger UI tests (tests/browser); CHROMIUM_PATH may name another binary.
# The proxy-policy tests run nginx (tests/integration/test_nginx_policy.py), the pooler tests
# pgbouncer (tests/integration/test_pooler.py). The replica tests need no PostgreSQL package:
# they use Debian's PostgreSQL where it is installed, else pgserver's.
PACKAGES=(chromium nginx pgbouncer)

missing=()
for package in "${PACKAGES[@]}"; do
    if [ "$package" = chromium ] && [ -n "${CHROMIUM_PATH:-}" ]; then
        [ -x "$CHROMIUM_PATH" ] && continue
        echo "make test: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file" >&2
        exit 1
    fi
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

command="apt-get install -y ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "make test needs ${missing[*]} (Debian packages): run 'sudo $command', then make test again" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "make test needs ${missing[*]}: install it with your system's package manager (or set CHROMIUM_PATH)" >&2
    exit 1
fi
echo "make test: installing ${missing[*]} with apt-get" >&2
log=$(mktemp)
if ! { "${sudo[@]}" apt-get update -qq &&
       DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
    echo "make test could not install ${missing[*]} (apt-get log: $log): run '$command' and make test again" >&2
    exit 1
fi
rm -f "$log"
