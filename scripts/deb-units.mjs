#!/usr/bin/env node
// The systemd units the Debian package ships (scripts/deb.sh), rendered by the
// same code "egress persist" uses, for the installed program: node is
// /usr/bin/node, egress is /usr/bin/egress, the state is /var/lib/egress.
// Usage: node scripts/deb-units.mjs DIR
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderUnit, UNIT_NAME, FORWARD_UNIT_NAME, FORWARD_UNIT_TEMPLATE } from '../dist/kernel/persist.js';
import { forwarderUnit } from '../dist/kernel/forwarder.js';
import { DNS_UNIT_NAME } from '../dist/kernel/units.js';

const dir = process.argv[2];
if (!dir) throw new Error('usage: deb-units.mjs DIR');
const self = ['/usr/bin/node', '/usr/bin/egress'];
const state = '/var/lib/egress';
const units = {
  [UNIT_NAME]: renderUnit(self, state),
  [FORWARD_UNIT_NAME]: renderUnit(self, state, FORWARD_UNIT_TEMPLATE),
  [DNS_UNIT_NAME]: forwarderUnit(self, state),
};
for (const [name, text] of Object.entries(units)) writeFileSync(join(dir, name), text, { mode: 0o644 });
