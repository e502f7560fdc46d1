#!/usr/bin/env bash
# The hostile-input campaign (test/campaign) on its own, with its figures:
# for each class of attack, the attacks tried, the trials run and the trials
# that broke the standard. It is also part of ./scripts/test.sh.
#   ./scripts/campaign.sh              # random seed (printed)
#   EGRESS_CAMPAIGN_SEED=42 ./scripts/campaign.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
tally=$(mktemp)
trap 'rm -f "$tally"' EXIT
export EGRESS_CAMPAIGN_SEED=${EGRESS_CAMPAIGN_SEED:-$RANDOM$RANDOM}
export EGRESS_CAMPAIGN_FULL=1   # every combination and the long kill series (the test suite runs a seeded part)
echo "campaign: seed $EGRESS_CAMPAIGN_SEED" >&2
rc=0
EGRESS_CAMPAIGN_TALLY=$tally npx vitest run test/campaign "$@" || rc=$?
node scripts/campaign-table.mjs "$tally" ${CAMPAIGN_JSON:+--json}
exit $rc
