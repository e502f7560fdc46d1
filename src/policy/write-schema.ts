/** Build step: write the editor JSON Schema and the policy reference from the validation schema (never edit the outputs by hand). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { policyReference } from './reference.js';
import { policyJsonSchema } from './schema.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
for (const [rel, text] of [
  ['schema/policy.schema.json', JSON.stringify(policyJsonSchema(), null, 2) + '\n'],
  ['docs/policy-reference.md', policyReference()],
] as const) {
  const out = join(root, rel);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, text);
}
