/** Shared fixtures: a fixed resolver and account table, so outputs never depend on this machine. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect } from 'vitest';
import type { Io } from '../src/cli/io.js';
import type { Ir } from '../src/ir/types.js';
import { loadPolicyText, type Loaded } from '../src/index.js';
import { readSetFile, staticResolver, type Resolver } from '../src/resolve/resolver.js';

export const ACCOUNTS = {
  users: new Map([
    ['root', 0],
    ['www-data', 33],
    ['postfix', 107],
    ['systemd-timesync', 998],
    ['appuser', 1001],
    ['alice', 1002],
  ]),
  groups: new Map([
    ['root', 0],
    ['www-data', 33],
    ['postfix', 114],
    ['systemd-timesync', 998],
    ['appuser', 1001],
    ['mail', 8],
    ['egress-dns', 990],
  ]),
  primaryGroup: new Map([
    [0, 0],
    [33, 33],
    [107, 114],
    [998, 998],
    [1001, 1001],
    [1002, 1002],
  ]),
};

export const NOW = new Date('2026-06-01T12:00:00Z');

/** Fixed hosts and accounts; set files from `files` when given, else from disk. */
export function fixedResolver(hosts: Record<string, { ipv4?: string[]; ipv6?: string[] }> = {}, files?: Record<string, string>): Resolver {
  const r = staticResolver(hosts, files ?? {}, ACCOUNTS);
  return files ? r : { ...r, readFile: readSetFile };
}

export function loadText(text: string, opts: { hosts?: Record<string, { ipv4?: string[]; ipv6?: string[] }>; files?: Record<string, string>; name?: string } = {}): Promise<Loaded> {
  return loadPolicyText(opts.name ?? 'policy.yaml', text, { resolver: fixedResolver(opts.hosts, opts.files), now: NOW, baseDir: '.' });
}

/** An Io that keeps what a command prints (`out`, `err`), its state directory `cwd/state` (plus `env`), the fixed resolver and NOW. */
export function captureIo(cwd: string, env: Record<string, string> = {}): Io & { out: string; err: string } {
  const o = { out: '', err: '' };
  return Object.assign(o, {
    stdout: (s: string) => void (o.out += s),
    stderr: (s: string) => void (o.err += s),
    env: { EGRESS_STATE_DIR: join(cwd, 'state'), ...env },
    cwd,
    resolver: fixedResolver(),
    now: NOW,
  });
}

/** The IR of a policy body (`version: 1` is put in front) through the real pipeline; the calling test fails on any error. */
export async function irOf(body: string, opts: { hosts?: Record<string, { ipv4?: string[]; ipv6?: string[] }>; files?: Record<string, string> } = {}): Promise<Ir> {
  const l = await loadText(`version: 1\n${body}`, opts);
  expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return l.ir!;
}

const made: string[] = [];
// Registered while the importing test file is collected: its temporary directories go when it ends, also on failure.
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory under the system's temporary directory, removed when the test file ends (pass or fail). */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}
