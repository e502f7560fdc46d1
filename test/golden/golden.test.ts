/**
 * Compiler output, one folder per case: policy.yaml (+ hosts.json, options.json)
 * and the expected output of every target: ir.txt and, per registered backend,
 * <target> text or <target>.err (its diagnostics) when it must refuse.
 * UPDATE_GOLDEN=1 rewrites; a missing or orphan golden file fails; a mismatch
 * also writes <file>.got (gitignored).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { BACKENDS } from '../../src/backends/registry.js';
import type { Target } from '../../src/backends/types.js';
import { renderText } from '../../src/diag/render.js';
import { printIr } from '../../src/ir/print.js';
import { loadPolicyText } from '../../src/index.js';
import { fixedResolver, NOW } from '../helpers.js';
import { ROOT as REPO } from '../paths.js';

const ROOT = join(REPO, 'test', 'golden', 'cases');
const EXAMPLES = join(REPO, 'examples');
const EXAMPLE_GOLDEN = join(REPO, 'test', 'golden', 'examples');
const UPDATE = process.env.UPDATE_GOLDEN === '1';
const EXT: Record<Target, string> = { nft: 'nft.txt', iptables: 'iptables.txt', windows: 'windows.ps1', wince: 'wince.reg', 'wince-c': 'wince.c' };
const INPUTS = new Set(['policy.yaml', 'hosts.json', 'options.json', 'ranges.txt']);

function golden(dir: string, file: string, got: string): void {
  const path = join(dir, file);
  rmSync(path + '.got', { force: true });
  if (UPDATE) {
    writeFileSync(path, got);
    return;
  }
  if (!existsSync(path)) {
    writeFileSync(path + '.got', got);
    throw new Error(`missing golden file ${path} (run with UPDATE_GOLDEN=1 to create it)`);
  }
  const want = readFileSync(path, 'utf8');
  if (want !== got) writeFileSync(path + '.got', got);
  expect(got).toBe(want);
}

/** Each case: [name, policy file, golden folder]. The examples are cases too, with goldens kept apart. */
const cases: [string, string, string][] = [
  ...readdirSync(ROOT)
    .filter((d) => existsSync(join(ROOT, d, 'policy.yaml')))
    .map((d): [string, string, string] => [d, join(ROOT, d, 'policy.yaml'), join(ROOT, d)]),
  ...readdirSync(EXAMPLES)
    .filter((f) => f.endsWith('.yaml'))
    .map((f): [string, string, string] => [`examples/${f}`, join(EXAMPLES, f), join(EXAMPLE_GOLDEN, f.replace(/\.yaml$/, ''))]),
].sort(([a], [b]) => (a < b ? -1 : 1));

describe.each(cases)('golden %s', (name, policyFile, dir) => {
  if (UPDATE) mkdirSync(dir, { recursive: true });
  const read = (f: string) => (existsSync(join(dir, f)) ? JSON.parse(readFileSync(join(dir, f), 'utf8')) : {});
  const hosts = read('hosts.json');
  const options = read('options.json') as { host?: string };
  const load = () =>
    loadPolicyText(name.startsWith('examples/') ? name : 'policy.yaml', readFileSync(policyFile, 'utf8'), { resolver: fixedResolver(hosts), now: NOW, baseDir: dirname(policyFile) });

  test('ir.txt', async () => {
    const l = await load();
    expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    golden(dir, 'ir.txt', printIr(l.ir!));
  });

  for (const [target, backend] of Object.entries(BACKENDS) as [Target, NonNullable<(typeof BACKENDS)[Target]>][]) {
    test(target, async () => {
      const l = await load();
      const res = backend.emit(l.ir!, { host: options.host ?? '192.0.2.101' });
      const errors = res.diagnostics.filter((d) => d.severity === 'error');
      const ok = EXT[target];
      const err = `${target}.err`;
      if (errors.length) {
        golden(dir, err, renderText(l.sources, res.diagnostics));
        if (!UPDATE) expect(existsSync(join(dir, ok)), `${ok} must not exist when ${target} refuses the policy`).toBe(false);
      } else {
        golden(dir, ok, res.value!.text);
        if (!UPDATE) expect(existsSync(join(dir, err)), `${err} must not exist when ${target} compiles the policy`).toBe(false);
      }
      if (UPDATE) rmSync(join(dir, errors.length ? ok : err), { force: true });
    });
  }

  test('no orphan golden files', () => {
    const expected = new Set(['ir.txt', ...Object.keys(BACKENDS).flatMap((t) => [EXT[t as Target], `${t}.err`])]);
    const orphans = (existsSync(dir) ? readdirSync(dir) : []).filter((f) => !INPUTS.has(f) && !expected.has(f) && !f.endsWith('.got'));
    expect(orphans).toEqual([]);
  });
});
