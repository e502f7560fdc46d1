#!/usr/bin/env bash
# Set up (see setup.sh) and run every test: unit, golden, property, CLI and kernel.
# Kernel tests need root and network namespaces; they fail (not skip) without them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
npm run --silent typecheck
exec npx vitest run "$@"
