/**
 * Who asked: the uid owning the client's socket, found in /proc/net/udp(6)
 * or /proc/net/tcp(6) by the client's address and port. This works for
 * clients on this host in the forwarder's network namespace (loopback, or
 * local programs whose queries the kernel redirected here); for anything else
 * (a forwarded container, a socket already closed) the uid is unknown and the
 * log line says nothing about it.
 *
 * Racy by nature: the table is read after the query arrived, while the client
 * waits for its answer, so its socket is normally still there.
 */
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import ipaddr from 'ipaddr.js';

export type ReadText = (path: string) => Promise<string>;

const LITTLE = endianness() === 'LE';

/** How /proc/net/* writes an address: 32-bit words in host byte order, in hex. */
export function procHex(address: string, little = LITTLE): string {
  const bytes = ipaddr.parse(address).toByteArray();
  let out = '';
  for (let w = 0; w < bytes.length; w += 4) {
    const word = bytes.slice(w, w + 4);
    if (little) word.reverse();
    out += word.map((b) => b.toString(16).padStart(2, '0')).join('');
  }
  return out.toUpperCase();
}

/** The uid in a /proc/net table whose local address is `address`:`port`, if any. */
export function uidFromTable(table: string, address: string, port: number, little = LITTLE): number | undefined {
  return tableIndex(table).get(`${procHex(address, little)}:${port.toString(16).toUpperCase().padStart(4, '0')}`);
}

/**
 * A table's local address → uid (the first line for each), parsed once per
 * table text: the queries of a busy moment share one read of the table, and
 * splitting it again per query was most of a named answer's CPU.
 */
const parsed: { text: string; index: Map<string, number> }[] = [];
function tableIndex(table: string): Map<string, number> {
  for (const p of parsed) if (p.text === table) return p.index;
  const index = new Map<string, number>();
  for (const line of table.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] !== undefined && f[7] !== undefined && /^\d+$/.test(f[7]) && !index.has(f[1])) index.set(f[1], Number(f[7]));
  }
  parsed.unshift({ text: table, index });
  if (parsed.length > 4) parsed.pop();
  return index;
}

/**
 * Where a client socket seen as `address`:`port` may be listed: bound to
 * that address, or (never bound, so bound by its first send) to the
 * wildcard; an IPv4 client may also be a dual-stack IPv6 socket.
 */
function candidates(proto: 'udp' | 'tcp', address: string): { path: string; address: string }[] {
  const v4 = ipaddr.parse(address).kind() === 'ipv4';
  const t4 = `/proc/net/${proto}`;
  const t6 = `/proc/net/${proto}6`;
  if (!v4) return [{ path: t6, address }, { path: t6, address: '::' }];
  return [
    { path: t4, address },
    { path: t4, address: '0.0.0.0' },
    { path: t6, address: `::ffff:${address}` },
    { path: t6, address: '::' },
  ];
}

/** The uid owning the local socket `address`:`port` of `proto`, or undefined when it cannot be known. */
export async function socketUid(proto: 'udp' | 'tcp', address: string, port: number, read: ReadText = (p) => readFile(p, 'utf8')): Promise<number | undefined> {
  let cands: { path: string; address: string }[];
  try {
    cands = candidates(proto, address);
  } catch {
    return undefined;
  }
  const tables = new Map<string, Promise<string>>();
  for (const c of cands) {
    let t = tables.get(c.path);
    if (!t) tables.set(c.path, (t = read(c.path).catch(() => '')));
    const uid = uidFromTable(await t, c.address, port);
    if (uid !== undefined) return uid;
  }
  return undefined;
}

/**
 * `socketUid` for a busy forwarder: at most one read of each /proc/net table
 * in flight; a query that arrived after it started shares the next one, which
 * starts as soon as it ends (so it lists every socket open by then). Under
 * load this turns one read per query into one per batch of queries.
 */
export class UidLookup {
  private readonly tables = new Map<string, { started: number; text: Promise<string>; next?: Promise<string> }>();

  constructor(
    private readonly read: ReadText = (p) => readFile(p, 'utf8'),
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The uid of the local socket `address`:`port` seen by a query that arrived at `arrived` (same clock as `now`). */
  async uid(proto: 'udp' | 'tcp', address: string, port: number, arrived: number): Promise<number | undefined> {
    return socketUid(proto, address, port, (path) => this.table(path, arrived));
  }

  private start(path: string): Promise<string> {
    const t: { started: number; text: Promise<string>; next?: Promise<string> } = { started: this.now(), text: this.read(path).catch(() => '') };
    this.tables.set(path, t);
    void t.text.finally(() => {
      if (this.tables.get(path) === t && !t.next) this.tables.delete(path);
    });
    return t.text;
  }

  private table(path: string, arrived: number): Promise<string> {
    const t = this.tables.get(path);
    if (!t) return this.start(path);
    if (t.started >= arrived) return t.text;
    t.next ??= t.text.then(() => this.start(path));
    return t.next;
  }
}
