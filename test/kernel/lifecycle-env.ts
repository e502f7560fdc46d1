/**
 * Shared set-up of the life-cycle kernel tests (test/kernel/lifecycle*.kernel.test.ts):
 * the CLI compiled once per file (so each spawn is fast), a throwaway network
 * namespace per test with its own state directory, and its own /etc/hosts and
 * resolv.conf (`ip netns exec` bind-mounts /etc/netns/NS/* over /etc/*), so
 * hostnames resolve — or fail to — without touching this machine.
 *
 * egress only ever runs as `ip netns exec NS node …/cli/run.js …`: never in
 * the root namespace.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Execer } from '../../src/kernel/exec.js';
import { createNetns, netnsName, uniqueTag } from '../../src/kernel/netns.js';
import { normalizeRuleset } from './harness.js';
import { ROOT } from '../paths.js';

export { ROOT };

/** A plain policy without names: one allow, default reject (what boot-time tests restore). */
export const PLAIN = `version: 1
default: reject
allow:
  - name: web
    reason: the web
    to: [192.0.2.80]
    ports: [tcp/443]
`;

/**
 * The project compiled by tsc, for tests that run the real CLI: a copy of
 * its own under node_modules/.cache (inside the repo, so packages resolve),
 * which the caller removes when done; returns the CLI entry. The compile is
 * done once per state of the sources (node_modules/.cache/egress-cli-HASH,
 * HASH over src/ and tsconfig.json) and shared: some twenty test files each
 * ran tsc (7 s, 9 s of CPU) before. Concurrent first builds each compile
 * into a directory of their own and rename it into place; the first wins.
 */
export function buildCli(name: string): string {
  const cache = join(ROOT, 'node_modules', '.cache');
  const built = join(cache, `egress-cli-${sourceHash()}`);
  if (!existsSync(join(built, 'cli', 'run.js'))) {
    const tmp = join(cache, `egress-cli-build-${process.pid}-${uniqueTag()}`);
    rmSync(tmp, { recursive: true, force: true });
    spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json'), '--outDir', tmp], { stdio: 'ignore' });
    if (!existsSync(join(tmp, 'cli', 'run.js'))) throw new Error(`building the CLI into ${tmp} failed`);
    // ES modules outside the package's scope (node_modules ends it): Node 18 does not detect them by their syntax.
    writeFileSync(join(tmp, 'package.json'), '{ "type": "module" }\n');
    try {
      renameSync(tmp, built);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another file's build got there first: the same sources, the same output
    }
    for (const d of readdirSync(cache)) if (/^egress-cli-[0-9a-f]{16}$/.test(d) && join(cache, d) !== built) rmSync(join(cache, d), { recursive: true, force: true }); // older sources
  }
  const out = join(cache, `egress-${name}-${process.pid}`);
  rmSync(out, { recursive: true, force: true });
  cpSync(built, out, { recursive: true });
  return join(out, 'cli', 'run.js');
}

/** A digest of what the compiled CLI is made from: every file under src/ (path and content) and tsconfig.json. */
function sourceHash(): string {
  const h = createHash('sha256');
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) h.update(`${p}\0`).update(readFileSync(p)).update('\0');
    }
  };
  walk(join(ROOT, 'src'));
  h.update(readFileSync(join(ROOT, 'tsconfig.json')));
  return h.digest('hex').slice(0, 16);
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Lc {
  ns: string;
  stateDir: string;
  dir: string;
  /** Run egress in the namespace. */
  egress(args: string[], env?: Record<string, string>): Promise<Ran>;
  /** Start egress in the namespace in its own process group and session (an "SSH session" to kill). */
  start(args: string[], env?: Record<string, string>): ChildProcess;
  /** Run any command in the namespace. */
  sh(argv: string[], input?: string): Promise<Ran>;
  hosts(lines: string): void;
  write(name: string, text: string): string;
  close(): Promise<void>;
}

function envFor(stateDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, EGRESS_STATE_DIR: stateDir, EGRESS_WATCHDOG: 'process', ...extra };
  if (!('SSH_CONNECTION' in extra)) delete env.SSH_CONNECTION;
  return env;
}

export function collect(child: ChildProcess): Promise<Ran> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.on('close', (code, sig) => resolve({ code: code ?? 128 + (sig === 'SIGKILL' ? 9 : 1), stdout, stderr })));
}

export async function lcEnv(x: Execer, cli: string): Promise<Lc> {
  const ns = netnsName(uniqueTag(), 'lc');
  const del = await createNetns(x, ns);
  const dir = mkdtempSync(join(tmpdir(), 'egress-lc-'));
  const stateDir = join(dir, 'state');
  const etc = join('/etc/netns', ns);
  mkdirSync(etc, { recursive: true });
  writeFileSync(join(etc, 'resolv.conf'), 'nameserver 192.0.2.1\noptions timeout:1 attempts:1\n');
  writeFileSync(join(etc, 'hosts'), '127.0.0.1 localhost\n');
  const spawnIn = (argv: string[], env: NodeJS.ProcessEnv, detached = false) =>
    spawn('ip', ['netns', 'exec', ns, ...argv], { env, cwd: dir, detached, stdio: ['ignore', 'pipe', 'pipe'] });
  return {
    ns,
    stateDir,
    dir,
    egress: (args, env) => collect(spawnIn([process.execPath, cli, ...args], envFor(stateDir, env))),
    start: (args, env) => spawnIn([process.execPath, cli, ...args], envFor(stateDir, env), true),
    sh: (argv, input) => {
      const c = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
      c.stdin.on('error', () => {}); // EPIPE when the program exits without reading
      c.stdin.end(input ?? '');
      return collect(c);
    },
    hosts: (lines) => writeFileSync(join(etc, 'hosts'), `127.0.0.1 localhost\n${lines}`),
    write: (name, text) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    },
    close: async () => {
      // A watchdog still waiting on this state directory must not outlive the test: stop it by its pid.
      try {
        const p = JSON.parse(readFileSync(join(stateDir, 'pending.json'), 'utf8')) as { body?: { watchdog?: { kind: string; pid?: number } } };
        if (p.body?.watchdog?.kind === 'process' && p.body.watchdog.pid) process.kill(p.body.watchdog.pid, 'SIGKILL');
      } catch {
        /* no pending confirmation, or the watchdog is gone */
      }
      rmSync(etc, { recursive: true, force: true });
      await del();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What egress owns in nft, as the kernel lists it (no counts, no handles). */
export async function nftOwned(lc: Lc): Promise<string> {
  const r = await lc.sh(['nft', 'list', 'table', 'inet', 'egress']);
  return r.code === 0 ? normalizeRuleset(r.stdout) : '(absent)';
}

/** One family's filter table, counts zeroed, generator lines dropped. */
export async function iptFamily(lc: Lc, f: 'ipv4' | 'ipv6'): Promise<string> {
  const r = await lc.sh([f === 'ipv4' ? 'iptables-save' : 'ip6tables-save', '-t', 'filter']);
  return normalizeRuleset(r.stdout);
}

export async function iptOwned(lc: Lc): Promise<string> {
  return `${await iptFamily(lc, 'ipv4')}\n== ipv6\n${await iptFamily(lc, 'ipv6')}`;
}

/** Foreign objects egress must never touch: an nft table, and an iptables chain jumped to from OUTPUT in both families. */
export async function addForeign(lc: Lc): Promise<void> {
  const nft = await lc.sh(
    ['nft', '-f', '-'],
    'table inet foreign {\n\tset keep { type ipv4_addr; elements = { 192.0.2.9 } }\n\tchain out {\n\t\ttype filter hook output priority 10; policy accept;\n\t\tip daddr @keep counter accept comment "not egress"\n\t}\n}\n',
  );
  if (nft.code !== 0) throw new Error(nft.stderr);
  for (const [tool, addr] of [
    ['iptables', '192.0.2.9'],
    ['ip6tables', '2001:db8::9'],
  ] as const) {
    for (const args of [['-N', 'FOREIGN'], ['-A', 'FOREIGN', '-d', addr, '-m', 'comment', '--comment', 'not egress', '-j', 'RETURN'], ['-A', 'OUTPUT', '-j', 'FOREIGN']]) {
      const r = await lc.sh([tool, ...args]);
      if (r.code !== 0) throw new Error(`${tool} ${args.join(' ')}: ${r.stderr}`);
    }
  }
}

/** The foreign objects, exactly as listed (counts included: nothing sends traffic in these tests). */
export async function foreign(lc: Lc): Promise<string> {
  const nft = await lc.sh(['nft', 'list', 'table', 'inet', 'foreign']);
  const lines: string[] = [nft.stdout];
  for (const tool of ['iptables-save', 'ip6tables-save']) {
    const r = await lc.sh([tool, '-c', '-t', 'filter']);
    lines.push(...r.stdout.split('\n').filter((l) => !l.startsWith('#') && !/EGRESS/.test(l)));
  }
  return lines.join('\n');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Poll `pred` until it holds. The bound is only a backstop below the tests'
 * 60 s timeout, so a hang fails with `what` rather than a bare timeout.
 */
export async function until(pred: () => boolean | Promise<boolean>, what: string, backstopMs = 50_000): Promise<void> {
  const end = Date.now() + backstopMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what} (waited ${backstopMs} ms)`);
    await sleep(50);
  }
}

/** Whether process `pid` exists and has not exited (a zombie has). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Whether any process of group `pgid` is still running (zombies aside). */
export function groupAlive(pgid: number): boolean {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid && !/^[ZX]$/.test(f[0]!)) return true;
    } catch {
      /* exited while we looked */
    }
  }
  return false;
}

/** The pending confirmation of `lc`: its token and its watchdog process. */
export function pendingOf(lc: Lc): { token: string; watchdog: { kind: string; pid: number } } {
  const p = JSON.parse(readFileSync(join(lc.stateDir, 'pending.json'), 'utf8')) as { body: { token: string; watchdog: { kind: string; pid: number } } };
  if (p.body.watchdog.kind !== 'process') throw new Error(`expected a process watchdog, got ${p.body.watchdog.kind}`);
  return p.body;
}
