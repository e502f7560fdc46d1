/**
 * The one skip rule for every test that needs the kernel (root, network
 * namespaces, nft, iptables, systemd-analyze), and `inNetns` for the tests
 * that only need a throwaway namespace to run a loader in.
 *
 * The rule: such a test runs, and fails when it cannot (not root, no netns, a
 * tool missing). It is skipped only by the explicit opt-out
 * `EGRESS_SKIP_KERNEL=1`, loudly, and never in CI (`CI=true`), where the
 * kernel is the project's main proof: there the opt-out is refused and the
 * tests run.
 *
 * A skipped test shows as skipped: `kernelTest` / `kernelDescribe` for tests
 * that are all kernel, `needKernel()` inside a test that checks text first
 * and then asks the kernel (the text is checked either way; the test is
 * marked skipped where the kernel's word would have been).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { getCurrentTest } from 'vitest/suite';

/** Whether the kernel tests are skipped: the explicit opt-out, outside CI. */
export function kernelSkipped(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.EGRESS_SKIP_KERNEL === '1' && env.CI !== 'true';
}

export const SKIP_KERNEL = kernelSkipped();

const bar = '!'.repeat(78);
if (SKIP_KERNEL) process.stderr.write(`\n${bar}\n!! EGRESS_SKIP_KERNEL=1: kernel tests are SKIPPED. Nothing was proved against the kernel.\n${bar}\n\n`);
else if (process.env.EGRESS_SKIP_KERNEL === '1') process.stderr.write(`\n${bar}\n!! EGRESS_SKIP_KERNEL=1 is ignored in CI (CI=true): the kernel tests run.\n${bar}\n\n`);

/** `test` for kernel tests: skipped only by the opt-out. */
export const kernelTest: typeof test = (SKIP_KERNEL ? test.skip : test) as typeof test;

/** `describe` for kernel tests: skipped only by the opt-out. */
export const kernelDescribe: typeof describe = (SKIP_KERNEL ? describe.skip : describe) as typeof describe;

/**
 * Inside a running test, before asking the kernel: under the opt-out, end the
 * test here as skipped (what it checked so far stands), rather than let it
 * pass as if the kernel had agreed.
 */
export function needKernel(what: string): void {
  if (!SKIP_KERNEL) return;
  const t = getCurrentTest();
  if (!t) throw new Error('needKernel() is for use inside a test');
  t.context.skip(`EGRESS_SKIP_KERNEL=1: ${what} not checked`);
}

export const NETNS_AVAILABLE = spawnSync('unshare', ['-n', 'true']).status === 0;

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `script` with `sh -e` in a fresh network namespace (`unshare -n`), in a
 * temporary directory holding `files`, so nft and iptables never touch the
 * machine's own firewall. Namespace and directory are gone afterwards. Under
 * the opt-out it ends the calling test as skipped (`needKernel`).
 */
export function inNetns(script: string, files: Record<string, string> = {}, timeoutMs = 120_000): Run {
  needKernel('a run in a network namespace');
  const dir = mkdtempSync(join(tmpdir(), 'egress-netns-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    const r = spawnSync('unshare', ['-n', 'sh', '-ec', script], { cwd: dir, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 });
    const why = r.error ? `${r.error.message}\n` : NETNS_AVAILABLE ? '' : 'unshare -n is unavailable (run the tests as root)\n';
    return { status: r.status, stdout: r.stdout ?? '', stderr: why + (r.stderr ?? '') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `nft -c` accepts this script in a throwaway namespace (the calling test fails with nft's words if not). */
export function expectNftAccepts(text: string): void {
  needKernel('nft -c on the emitted script');
  const r = inNetns('nft -c -f ruleset.nft', { 'ruleset.nft': text });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
}
