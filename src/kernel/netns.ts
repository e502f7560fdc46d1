/**
 * Throwaway network namespaces for the lab and the kernel tests: unique
 * names, creation, deletion, and cleanup that also runs on SIGINT/SIGTERM.
 *
 * Names carry the creating pid (`egress-<pid>-<rand>-<role>`), so namespaces
 * left behind by a process that was killed with SIGKILL are recognisable and
 * `sweepStale` removes them on the next run. Nothing here touches the root
 * namespace's firewall or addresses: every command is `ip netns …`, `ip -n NS …`
 * or runs inside a namespace.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeFailure, type Execer } from './exec.js';

/** Linux IFNAMSIZ is 16 including the NUL. */
export const IFNAME_MAX = 15;
const PREFIX = 'egress-';
const PID_MAX_LIMIT = 4_194_304;

/** A tag unique to this process and call: pid in base 36 plus 4 random hex digits. */
export function uniqueTag(): string {
  return `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
}

export function netnsName(tag: string, role: string): string {
  return `${PREFIX}${tag}-${role}`;
}

/** An interface name from a tag and a short role; throws rather than let the kernel truncate or refuse it. */
export function ifName(tag: string, role: string): string {
  const n = `eg${tag}${role}`;
  if (n.length > IFNAME_MAX || !/^[a-zA-Z0-9_.-]+$/.test(n)) throw new Error(`interface name "${n}" is not a valid Linux interface name`);
  return n;
}

/** The pid encoded in one of our namespace names, or undefined for names that are not ours. */
export function ownerPid(ns: string): number | undefined {
  const m = /^egress-([0-9a-z]+)[0-9a-f]{4}-[a-z0-9-]+$/.exec(ns);
  if (!m) return undefined;
  const pid = parseInt(m[1]!, 36);
  // Linux pids never exceed PID_MAX_LIMIT (2^22): anything larger is a name that only looks like ours.
  return pid > 0 && pid <= PID_MAX_LIMIT ? pid : undefined;
}

export class NetnsError extends Error {}

async function must(x: Execer, argv: string[], opts: { input?: string } = {}): Promise<string> {
  const r = await x.run(argv[0]!, argv.slice(1), opts);
  if (r.code !== 0) throw new NetnsError(describeFailure(argv, r));
  return r.stdout;
}

/**
 * Namespaces (and processes running in them) to tear down, also on SIGINT
 * and SIGTERM. Process-wide by nature: a signal does not know which harness
 * it interrupts.
 */
class Cleanup {
  private readonly items = new Map<number, () => Promise<void>>();
  private next = 0;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    this.uninstall();
    process.stderr.write(`egress: ${sig}: removing lab network namespaces\n`);
    // Then die of the same signal, as if we had not been listening.
    void this.runAll().finally(() => process.kill(process.pid, sig));
  };

  add(fn: () => Promise<void>): number {
    if (!this.items.size) for (const sig of SIGNALS) process.on(sig, this.onSignal);
    const id = this.next++;
    this.items.set(id, fn);
    return id;
  }

  remove(id: number): void {
    this.items.delete(id);
    if (!this.items.size) this.uninstall();
  }

  async runAll(): Promise<void> {
    const fns = [...this.items.values()].reverse();
    this.items.clear();
    for (const fn of fns) await fn().catch(() => {});
  }

  private uninstall(): void {
    for (const sig of SIGNALS) process.removeListener(sig, this.onSignal);
  }
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export const cleanup = new Cleanup();

/** Create a namespace with lo up; it is deleted by `deleteNetns` or on SIGINT/SIGTERM. */
export async function createNetns(x: Execer, name: string): Promise<() => Promise<void>> {
  await must(x, ['ip', 'netns', 'add', name]);
  const del = async () => {
    await x.run('ip', ['netns', 'del', name]);
    removeNetnsEtc(name);
  };
  const id = cleanup.add(del);
  try {
    await must(x, ['ip', '-n', name, 'link', 'set', 'lo', 'up']);
  } catch (e) {
    cleanup.remove(id);
    await del();
    throw e;
  }
  return async () => {
    cleanup.remove(id);
    await del();
  };
}

/** Where `ip netns exec NS` finds files it bind-mounts over /etc (hosts, nsswitch.conf, …). */
export const NETNS_ETC = '/etc/netns';

/**
 * Give our namespace `ns` its own /etc files (`ip netns exec` mounts
 * /etc/netns/NS/FILE over /etc/FILE for what runs inside). Only for our own
 * namespaces; removed with the namespace.
 */
export function writeNetnsEtc(ns: string, files: Record<string, string>): void {
  if (ownerPid(ns) === undefined) throw new Error(`refusing to write ${NETNS_ETC}/${ns}: not a namespace of ours`);
  const dir = join(NETNS_ETC, ns);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [name, text] of Object.entries(files)) {
    if (!/^[a-z][a-z0-9._-]*$/.test(name)) throw new Error(`bad /etc file name "${name}"`);
    writeFileSync(join(dir, name), text, { mode: 0o644 });
  }
}

function removeNetnsEtc(ns: string): void {
  if (ownerPid(ns) !== undefined) rmSync(join(NETNS_ETC, ns), { recursive: true, force: true });
}

/** Run several `ip` commands in one process (`ip -n NS -batch -`); fails with the first error. */
export async function ipBatch(x: Execer, ns: string | undefined, lines: string[]): Promise<void> {
  if (!lines.length) return;
  await must(x, ['ip', ...(ns ? ['-n', ns] : []), '-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** Set sysctls inside a namespace (they are per-namespace for net.*). */
export async function sysctl(x: Execer, ns: string, values: Record<string, string | number>): Promise<void> {
  const args = Object.entries(values).map(([k, v]) => `${k}=${v}`);
  const r = await x.run('sysctl', ['-q', '-w', ...args], { netns: ns });
  if (r.code !== 0) throw new NetnsError(describeFailure(['ip', 'netns', 'exec', ns, 'sysctl', '-w', ...args], r));
}

export async function listNetns(x: Execer): Promise<string[]> {
  const r = await x.run('ip', ['netns', 'list']);
  if (r.code !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Delete our namespaces whose creating process is gone (left by a SIGKILLed run). Returns their names. */
export async function sweepStale(x: Execer): Promise<string[]> {
  const stale = (await listNetns(x)).filter((n) => {
    const pid = ownerPid(n);
    return pid !== undefined && pid !== process.pid && !alive(pid);
  });
  for (const n of stale) {
    await x.run('ip', ['netns', 'del', n]);
    removeNetnsEtc(n);
  }
  // /etc/netns directories of ours whose namespace (and owner) is gone.
  let dirs: string[] = [];
  try {
    dirs = readdirSync(NETNS_ETC);
  } catch {
    /* no /etc/netns */
  }
  for (const d of dirs) {
    const pid = ownerPid(d);
    if (pid !== undefined && pid !== process.pid && !alive(pid)) removeNetnsEtc(d);
  }
  return stale;
}

/** What is missing for namespaces to work here; empty when the lab and the kernel tests can run. */
export async function preflight(x: Execer, need: readonly string[] = ['ip', 'nft', 'iptables-restore', 'ip6tables-restore', 'setpriv', 'sysctl', 'ping']): Promise<string[]> {
  const problems: string[] = [];
  if (typeof process.getuid === 'function' && process.getuid() !== 0) problems.push('needs root (network namespaces and firewall rules need CAP_NET_ADMIN and CAP_SYS_ADMIN)');
  for (const cmd of need) if (!onPath(cmd)) problems.push(`"${cmd}" is not installed`);
  if (problems.length) return problems;
  const probe = netnsName(uniqueTag(), 'check');
  const r = await x.run('ip', ['netns', 'add', probe]);
  if (r.code !== 0) problems.push(`cannot create a network namespace: ${r.stderr.trim() || `exit ${r.code}`}`);
  else await x.run('ip', ['netns', 'del', probe]);
  return problems;
}

/** Whether `cmd` is an executable on PATH (plus the sbin directories root's PATH may lack). */
export function onPath(cmd: string, path = process.env.PATH ?? ''): boolean {
  const dirs = [...path.split(':').filter(Boolean), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  return dirs.some((d) => {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
