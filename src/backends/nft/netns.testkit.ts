/**
 * Test-only: run shell commands inside a throwaway network namespace
 * (`unshare -n`), so nft/iptables checks and loads never touch the machine's
 * own firewall. Fails (does not skip) when namespaces are unavailable, unless
 * EGRESS_SKIP_KERNEL=1 outside CI, which prints a loud notice.
 *
 * Not part of the product: only *.test.ts files import it, and the kernel
 * layer (src/kernel/) is where the product runs these tools.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NETNS_AVAILABLE = spawnSync('unshare', ['-n', 'true']).status === 0;
export const SKIP_KERNEL = !NETNS_AVAILABLE && process.env.EGRESS_SKIP_KERNEL === '1' && process.env.CI !== 'true';
if (SKIP_KERNEL) console.warn('\n!!! EGRESS_SKIP_KERNEL=1 and no network namespaces: nft/iptables loader checks are SKIPPED !!!\n');

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `script` with `sh -e` in a fresh network namespace, in a temporary
 * directory holding `files`. Namespace and directory are gone afterwards.
 */
export function inNetns(script: string, files: Record<string, string> = {}, timeoutMs = 120_000): Run {
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
