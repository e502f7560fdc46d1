/**
 * The I/O seams of the front end: host names, included files and local
 * accounts. Tests pass fakes; the CLI passes `systemResolver()`.
 */
import { lookup, Resolver as DnsResolver } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { MAX_SET_FILE_BYTES, readBounded } from '../diag/read-file.js';
import { RESOLVED_CONF, RESOLV_CONF } from './dns.js';

export interface HostAddresses {
  ipv4: string[];
  ipv6: string[];
}

export interface Resolver {
  /** A and AAAA through the system resolver (so /etc/hosts pins work); throws on failure. */
  lookupHost(name: string): Promise<HostAddresses>;
  readFile(path: string): Promise<string>;
  accounts(): Promise<Accounts>;
  /**
   * The smallest TTL of a name's A and AAAA records, asked of DNS directly
   * (the system resolver gives none); undefined when DNS does not know the
   * name (an /etc/hosts pin) or cannot be reached. Optional: a resolver
   * without it has no TTLs, and `refresh --watch` uses its upper bound.
   */
  ttl?(name: string): Promise<number | undefined>;
  /**
   * The system resolver's configuration, for the DNS forwarder's upstream
   * when the policy names none: the text of /etc/resolv.conf and of
   * systemd-resolved's upstream list (/run/systemd/resolve/resolv.conf),
   * each undefined where the file is missing. Optional: a resolver without
   * it cannot tell, and the upstream is known only when the forwarder starts.
   */
  resolvConf?(): Promise<{ system?: string; resolved?: string }>;
}

export interface Accounts {
  users: Map<string, number>;
  groups: Map<string, number>;
  /** uid → primary gid, so a flow "as user X" gets X's group too. */
  primaryGroup: Map<number, number>;
}

const LOOKUP_TIMEOUT_MS = 5000;

export function systemResolver(opts: { passwd?: string; group?: string } = {}): Resolver {
  let acct: Promise<Accounts> | undefined;
  return {
    async lookupHost(name) {
      const timeout = new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timed out')), LOOKUP_TIMEOUT_MS).unref());
      const res = await Promise.race([lookup(name, { all: true, verbatim: true }), timeout]);
      const out: HostAddresses = { ipv4: [], ipv6: [] };
      for (const r of res) (r.family === 6 ? out.ipv6 : out.ipv4).push(r.address);
      return out;
    },
    async ttl(name) {
      const r = new DnsResolver({ timeout: 3000, tries: 1 });
      const ttls: number[] = [];
      for (const q of [r.resolve4.bind(r), r.resolve6.bind(r)]) {
        try {
          for (const a of await q(name, { ttl: true })) ttls.push(a.ttl);
        } catch {
          /* no record of this type, or DNS unreachable */
        }
      }
      return ttls.length ? Math.min(...ttls) : undefined;
    },
    readFile: readSetFile,
    async resolvConf() {
      const read = (p: string) => readFile(p, 'utf8').catch(() => undefined);
      const [system, resolved] = await Promise.all([read(RESOLV_CONF), read(RESOLVED_CONF)]);
      return { ...(system !== undefined ? { system } : {}), ...(resolved !== undefined ? { resolved } : {}) };
    },
    accounts() {
      acct ??= loadAccounts(opts.passwd ?? '/etc/passwd', opts.group ?? '/etc/group');
      return acct;
    },
  };
}

/** A set file from disk: a regular file only, at most MAX_SET_FILE_BYTES (a device or FIFO is refused, not read forever). */
export async function readSetFile(path: string): Promise<string> {
  return readBounded(path, MAX_SET_FILE_BYTES).toString('utf8');
}

async function loadAccounts(passwd: string, group: string): Promise<Accounts> {
  const primaryGroup = new Map<number, number>();
  const table = async (p: string) => {
    const m = new Map<string, number>();
    const text = await readFile(p, 'utf8').catch(() => '');
    for (const line of text.split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && f[0] && /^\d+$/.test(f[2]!)) m.set(f[0], Number(f[2]));
      if (p === passwd && f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!)) primaryGroup.set(Number(f[2]), Number(f[3]));
    }
    return m;
  };
  return { users: await table(passwd), groups: await table(group), primaryGroup };
}

/** A resolver over fixed tables, for tests and for `lab` worlds; `files` also holds /etc/resolv.conf (and systemd-resolved's list) when a test needs them. */
export function staticResolver(hosts: Record<string, Partial<HostAddresses>>, files: Record<string, string> = {}, accounts?: Partial<Accounts>): Resolver {
  return {
    async lookupHost(name) {
      const h = hosts[name];
      if (!h) throw new Error('name not found');
      return { ipv4: h.ipv4 ?? [], ipv6: h.ipv6 ?? [] };
    },
    async readFile(p) {
      const f = files[p];
      if (f === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${p}'`), { code: 'ENOENT' });
      return f;
    },
    async resolvConf() {
      const system = files[RESOLV_CONF];
      const resolved = files[RESOLVED_CONF];
      return { ...(system !== undefined ? { system } : {}), ...(resolved !== undefined ? { resolved } : {}) };
    },
    async accounts() {
      return { users: accounts?.users ?? new Map(), groups: accounts?.groups ?? new Map(), primaryGroup: accounts?.primaryGroup ?? new Map() };
    },
  };
}
