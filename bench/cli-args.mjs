// What the benchmarks that time whole egress builds share (startup.mjs, status.mjs,
// apply.mjs): the repository root, `--name VALUE` options, the `--bin [LABEL=]PATH`
// builds to compare (default bin/egress.js), quantiles of a sample, the root check,
// and the policy of one rule over a big `{ file: dests.txt }` set.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);

/** The value after `--NAME`, else `def`. */
export const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};

export const flag = (name) => argv.includes(`--${name}`);

/** Each `--bin [LABEL=]PATH` as { label, path } (path resolved against the repository); bin/egress.js when none is given. */
export function builds() {
  const bins = argv.flatMap((a, i) => (argv[i - 1] === '--bin' ? [a] : []));
  if (!bins.length) bins.push('bin/egress.js');
  return bins.map((b) => {
    const [label, path] = b.includes('=') ? b.split('=', 2) : [b, b];
    return { label, path: resolve(ROOT, path) };
  });
}

/** The q-quantile of xs, interpolated (0.5: the median). */
export const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.ceil(i)] - s[lo]) * (i - lo);
};

/** Exit 1 saying so unless this runs as root (the benchmarks make network namespaces). */
export function requireRoot(script) {
  if (process.getuid?.() === 0) return;
  process.stderr.write(`bench/${script} needs root (a network namespace)\n`);
  process.exit(1);
}

/** A policy whose rule "many" allows the destinations of dests.txt on `ports`, then `extra` (more rules, YAML list items). */
export function manyPolicy(ports, extra = '') {
  return `version: 1
default: reject
sets:
  many: { file: dests.txt }
allow:
  - name: many
    reason: benchmark destinations
    to: [$many]
    ports: [${ports.join(', ')}]
${extra}`;
}
