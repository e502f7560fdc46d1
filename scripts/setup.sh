#!/usr/bin/env bash
# Install what egress needs on a fresh Debian machine, then build it.
# --test: also what only the tests need (scripts/test.sh passes it).
# Idempotent: installs Debian packages only where missing, npm packages from the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# Node and npm: the distribution's where there are none (Debian 12: Node 18.20; egress supports >= 18.19).
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v iptables-restore >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)     # lab/kernel tests probe ICMP echo
command -v sysctl >/dev/null 2>&1 || need+=(procps)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)   # verifies the boot unit in tests
if [ "${1:-}" = --test ]; then   # what only the tests need
  command -v groff >/dev/null 2>&1 || need+=(groff-base)          # renders egress(8): groff -man -ww -z
  command -v zsh >/dev/null 2>&1 || need+=(zsh)                    # the zsh completion
  [ -f /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)   # the bash completion beside it
  command -v lintian >/dev/null 2>&1 || need+=(lintian)          # checks the Debian package (test/package)
  command -v man >/dev/null 2>&1 || need+=(man-db)               # finds the installed man page
  command -v logrotate >/dev/null 2>&1 || need+=(logrotate)      # checks the package's logrotate snippet
  command -v chromium >/dev/null 2>&1 || need+=(chromium)        # loads egress report's page headless (test/report/report.browser.test.ts)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 18 || (a === 18 && b >= 19) ? 0 : 1)'; then
  echo "setup: node $(node --version) is too old: egress needs Node 18.19 or later" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: building" >&2
npm run --silent build
