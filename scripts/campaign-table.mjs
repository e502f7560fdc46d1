// The campaign's figures from its tally file (one JSON line per attack): a table per class, then the totals.
import { readFileSync } from 'node:fs';

const [file, flag] = process.argv.slice(2);
const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
if (flag === '--json') {
  process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  process.exit(0);
}
const classes = new Map();
for (const r of rows) {
  const c = classes.get(r.class) ?? { attacks: [], trials: 0, failures: 0 };
  c.attacks.push(r);
  c.trials += r.trials;
  c.failures += r.failures;
  classes.set(r.class, c);
}
const table = (head, body) => {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => String(b[i]).length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...body.map(line)].join('\n') + '\n';
};
let out = '';
for (const [name, c] of classes) {
  out += `\n${name}\n` + table(['attack', 'trials', 'failures'], c.attacks.map((a) => [a.attack, a.trials, a.failures]));
}
const sum = (k) => [...classes.values()].reduce((s, c) => s + c[k], 0);
out += '\n' + table(['class', 'attacks', 'trials', 'failures'], [...[...classes].map(([n, c]) => [n, c.attacks.length, c.trials, c.failures]), ['total', rows.length, sum('trials'), sum('failures')]]);
process.stdout.write(out);
