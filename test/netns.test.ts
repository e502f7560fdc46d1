import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { KERNEL_TEST_FILES } from '../vitest.config.js';
import { kernelSkipped } from './netns.js';
import { ROOT } from './paths.js';

// The one skip rule of the kernel tests: only the explicit opt-out, and never in CI.
test.each([
  [{}, false],
  [{ EGRESS_SKIP_KERNEL: '1' }, true],
  [{ EGRESS_SKIP_KERNEL: '1', CI: 'true' }, false],
  [{ EGRESS_SKIP_KERNEL: 'true' }, false],
  [{ EGRESS_SKIP_KERNEL: '0' }, false],
  [{ CI: 'true' }, false],
])('kernelSkipped(%j) = %s', (env, skipped) => {
  expect(kernelSkipped(env)).toBe(skipped);
});

// Every test file that creates namespaces through the helpers runs in the
// serial "kernel" project (vitest.config.ts), never beside another one.
test('every test file that uses network namespaces is in the kernel project', () => {
  const root = ROOT;
  const files = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : []));
  const globRe = (g: string) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\//g, '(.*/)?').replace(/\*/g, '[^/]*')}$`);
  const kernel = KERNEL_TEST_FILES.map(globRe);
  const usesNetns = (f: string) => /\binNetns\(|\buseKernel\(|\buseRootGuard\(|\busePair\(|\bWorld\.create\(|\blcEnv\(|spawnSync\('unshare'/.test(readFileSync(join(root, f), 'utf8'));
  const all = [...files('src'), ...files('test')];
  const netnsFiles = all.filter(usesNetns);
  expect(netnsFiles.length).toBeGreaterThanOrEqual(9);
  expect(netnsFiles.filter((f) => !kernel.some((re) => re.test(f)))).toEqual([]);
  // And the kernel project holds nothing else (it runs one file at a time).
  expect(all.filter((f) => kernel.some((re) => re.test(f)) && !usesNetns(f))).toEqual([]);
});
