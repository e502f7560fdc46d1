// Rewrites systemd/ from the unit templates in src/kernel (persist.ts shippedUnits), as the package ships them.
// Run after changing a template: npm run build && node scripts/write-units.mjs (a test fails until systemd/ matches).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { shippedUnits } = await import(join(root, 'dist', 'kernel', 'persist.js'));
for (const [name, text] of shippedUnits()) writeFileSync(join(root, 'systemd', name), text);
