#!/usr/bin/env bash
# Set up (see setup.sh) and run the main job: rehearse a policy (default: the
# starter policy) in throwaway network namespaces. Needs root; the host's own
# firewall is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec node bin/egress.js lab "$@"
