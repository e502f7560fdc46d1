/**
 * Puts answered addresses into nft sets through ONE long-lived `nft -i`
 * child (spawning nft per insert costs 70–80 ms on the reference machine).
 *
 * How a commit is confirmed (measured with nft 1.0.6 on kernel 6.18):
 *
 * - `nft -i` reads one command line at a time; a line is one transaction
 *   (`;` joins commands), sent to the kernel and acknowledged before the next
 *   line is read. Success prints nothing; an error prints `Error: …`, the
 *   offending line and a caret line, on stderr.
 * - After each command the writer sends a line that is a deliberate syntax
 *   error, `egress-sync N`. nft answers it on stderr too, cheaply (no kernel
 *   round trip), so the command's own error, if any, always comes before the
 *   echo of `egress-sync N` in the same pipe. Echo seen with no error before
 *   it = the transaction was committed.
 * - Not `nft -e` (echo) and its `# new generation N` line: in echo mode nft
 *   fetches every element of the table before each command, so a confirmed
 *   insert took 0.5 ms with empty sets, 11 ms at 5,000 elements and 62 ms at
 *   20,000. `get element` as a read-back costs the same, and with 256
 *   addresses nft 1.0.6 aborts ("stack smashing detected"). Without echo the
 *   cost stays at about 0.3 ms whatever the set sizes. stderr is unbuffered,
 *   so no `stdbuf` is needed either.
 * - nft keeps every line in its libedit history (memory and per-command time
 *   grow: p50 0.35 → 1.3 ms over 50,000 commands) and writes it to
 *   `$HOME/.nft.history` on exit. The child runs with HOME pointing nowhere,
 *   and is replaced by a fresh one every `recycleAfter` commands, the new one
 *   started before the old one is let go.
 *
 * Inserts that arrive while a command is in flight are sent together as the
 * next command (one transaction). An address is only ever written in its
 * canonical form and checked first, so nft never sees a hostname (it would
 * resolve it, through this very forwarder).
 *
 * Refreshing (default `refresh: 'delete-readd'`): an element is written as
 * `add; delete; add` in one transaction, so the element the kernel ends up
 * with is a fresh one — unless this writer itself confirmed it with an expiry
 * more than `SAFE_READD_MS` away, in which case it is surely live (or gone
 * altogether) and a plain `add` refreshes it at a third of the cost (nft
 * spends ~20 µs per element operation). A plain re-add (`refresh: 'readd'`) does set a live
 * element's timeout anew on 6.18, but not reliably for an element at or just
 * past its expiry (expired, or already marked for the set's garbage
 * collector): nft reports success and lookups still miss it. Measured here:
 * 3 of 991 re-adds of 1 s elements were not found by `nft get element` right
 * after, against 0 of 830 with add;delete;add; and the kernel DNS test saw
 * ~20 blocked connects in 2,200 cycles with re-add, none with add;delete;add.
 * Kernels before 6.12 never update the timeout on re-add at all. The first
 * `add` makes sure the `delete` finds something. A refresh never shortens:
 * the writer remembers each element's expiry and asks for at least what is
 * left.
 *
 * When the child dies, every pending and new publish fails (the forwarder
 * answers SERVFAIL) until a new child is up; restarts back off exponentially.
 */
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Execer, Started } from '../kernel/exec.js';
import type { Element, ElementWriter } from './types.js';

export interface NftWriterOptions {
  execer: Execer;
  /** Family and name of the table, e.g. 'inet egress'. */
  table: string;
  /** Run nft inside this network namespace (tests). */
  netns?: string;
  /** How a publish is written (see the header): 'delete-readd' (default, safe) or 'readd' (live elements only). */
  refresh?: 'readd' | 'delete-readd';
  /** Most elements per command. */
  maxBatch?: number;
  /** Commands one child runs before it is replaced. */
  recycleAfter?: number;
  /** A command unanswered this long kills the child (it is restarted). */
  stallMs?: number;
  /** First and largest delay before restarting a dead child. */
  backoffMs?: { min: number; max: number };
  /** Monotonic milliseconds. */
  now?: () => number;
  onEvent?: (e: WriterEvent) => void;
}

export type WriterEvent =
  | { event: 'writer-up'; pid: number | undefined; generation: number }
  | { event: 'writer-down'; reason: string; restartInMs: number }
  | { event: 'writer-refused'; command: string; error: string };

export class WriterError extends Error {}

const MAX_TIMEOUT_SEC = 7 * 24 * 3600;
/** A known element further than this from its expiry is refreshed by a plain add. */
export const SAFE_READD_MS = 2000;
const SET_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const TABLE = /^(ip|ip6|inet) [A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const CARET = /^\s*[\^~]+\s*$/;

interface Pending {
  elements: readonly Element[];
  resolve: () => void;
  reject: (e: Error) => void;
  /** Sent on its own after a batch it was part of failed. */
  alone?: boolean;
}

interface Child {
  started: Started;
  generation: number;
  commands: number;
  /** Set once `egress-sync 0` came back. */
  ready: boolean;
  lines: string[];
}

interface InFlight {
  child: Child;
  sync: number;
  items: Pending[];
  command: string;
  /** Expiries to remember once confirmed. */
  expiries: { set: string; address: string; expiry: number }[];
  timer: NodeJS.Timeout;
}

/** Check an element before it goes anywhere near nft; the reason it is refused, or undefined. */
export function elementProblem(e: Element): string | undefined {
  if (!SET_NAME.test(e.set)) return `set name "${e.set}" is not an nft identifier`;
  if (e.family === 'ipv4' ? !isIPv4(e.address) : !isIPv6(e.address)) return `"${e.address}" is not an ${e.family} address`;
  if (!/^[0-9a-fA-F:.]+$/.test(e.address)) return `"${e.address}" is not in plain address form`;
  if (!Number.isFinite(e.timeoutSec) || e.timeoutSec < 1) return `timeout ${e.timeoutSec} is not a positive number of seconds`;
  return undefined;
}

/**
 * An address as a short flat string of its bytes (4 or 16 latin1
 * characters): one key per address whatever its text form, and about a
 * third of the memory of "set address" keys built by concatenation.
 */
export function packAddress(address: string): string {
  try {
    return String.fromCharCode(...ipaddr.parse(address).toByteArray());
  } catch {
    return address; // not an address: never confirmed, so never found
  }
}

export class NftWriter implements ElementWriter {
  private readonly o: Required<Omit<NftWriterOptions, 'netns' | 'onEvent'>> & Pick<NftWriterOptions, 'netns' | 'onEvent'>;
  private child: Child | undefined;
  private spare: Child | undefined;
  private queue: Pending[] = [];
  private inflight: InFlight | undefined;
  private nextSync = 1;
  private generation = 0;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Expiry (monotonic ms, rounded down) of each element this writer confirmed: per set, by packed address (`packAddress`). */
  private readonly known = new Map<string, Map<string, number>>();
  private confirmsSincePrune = 0;
  private upWaiters: (() => void)[] = [];
  private readonly retired = new Set<Promise<unknown>>();

  constructor(opts: NftWriterOptions) {
    if (!TABLE.test(opts.table)) throw new WriterError(`table "${opts.table}" is not "FAMILY NAME" with family ip, ip6 or inet`);
    this.o = {
      ...opts,
      refresh: opts.refresh ?? 'delete-readd',
      maxBatch: opts.maxBatch ?? 512,
      recycleAfter: opts.recycleAfter ?? 5000,
      stallMs: opts.stallMs ?? 5000,
      backoffMs: opts.backoffMs ?? { min: 50, max: 5000 },
      now: opts.now ?? (() => performance.now()),
    };
    this.spawn();
  }

  /** Resolves when a child is up and confirmed it reads commands. */
  up(): Promise<void> {
    if (this.child?.ready) return Promise.resolve();
    return new Promise((resolve) => this.upWaiters.push(resolve));
  }

  /**
   * How long `set address` surely stays in the kernel, in ms from now: the
   * expiry this writer recorded when it confirmed the element (computed
   * from the moment the command was built, before the kernel's timer
   * started, so never later than the kernel's), or 0 when it did not
   * confirm it. See the forwarder's fast path for what may rely on it.
   */
  remainingMs(set: string, address: string): number {
    const exp = this.expiry(set, address);
    return exp === undefined ? 0 : Math.max(0, exp - this.o.now());
  }

  /** Whether publishes are being taken now. */
  get isUp(): boolean {
    return !!this.child?.ready && !this.closed;
  }

  publish(elements: readonly Element[]): Promise<void> {
    if (this.closed) return Promise.reject(new WriterError('the nft writer is closed'));
    if (!this.child?.ready) return Promise.reject(new WriterError('the nft writer is down'));
    for (const e of elements) {
      const p = elementProblem(e);
      if (p) return Promise.reject(new WriterError(p));
    }
    if (!elements.length) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.queue.push({ elements, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.restartTimer);
    const err = new WriterError('the nft writer is closed');
    this.failAll(err);
    for (const c of [this.child, this.spare]) if (c) this.retire(c);
    this.child = this.spare = undefined;
    for (const w of this.upWaiters.splice(0)) w();
    await Promise.all([...this.retired]);
  }

  private spawn(): Child {
    const started = this.o.execer.start('nft', ['-i'], {
      ...(this.o.netns !== undefined ? { netns: this.o.netns } : {}),
      lines: 'stderr',
      // No history file read or written, and messages in one language.
      env: { HOME: '/nonexistent/egress-nft-writer', LC_ALL: 'C' },
    });
    const child: Child = { started, generation: ++this.generation, commands: 0, ready: false, lines: [] };
    if (!this.child) this.child = child;
    else this.spare = child;
    started.write('egress-sync 0\n');
    void this.read(child);
    return child;
  }

  private async read(child: Child): Promise<void> {
    for (;;) {
      let line: string;
      try {
        line = await child.started.nextLine();
      } catch (e) {
        this.died(child, (e as Error).message);
        return;
      }
      this.onLine(child, line);
    }
  }

  private onLine(child: Child, line: string): void {
    if (line === 'egress-sync 0' && !child.ready) {
      child.lines = [];
      child.ready = true;
      this.o.onEvent?.({ event: 'writer-up', pid: child.started.pid, generation: child.generation });
      if (child === this.child) for (const w of this.upWaiters.splice(0)) w();
      this.pump();
      return;
    }
    const f = this.inflight;
    if (f && f.child === child && line === `egress-sync ${f.sync}`) {
      // The line before the echo is the sentinel's own syntax error; any other error is the command's.
      const errors = child.lines.slice(0, -1).filter((l) => l.startsWith('Error:'));
      child.lines = [];
      this.settle(f, errors.length ? errors.join('; ') : undefined);
      return;
    }
    if (!CARET.test(line)) child.lines.push(line);
    if (child.lines.length > 64) child.lines.shift();
  }

  private settle(f: InFlight, error: string | undefined): void {
    clearTimeout(f.timer);
    this.inflight = undefined;
    if (error === undefined) {
      this.failures = 0;
      for (const x of f.expiries) {
        let m = this.known.get(x.set);
        if (!m) this.known.set(x.set, (m = new Map()));
        const k = packAddress(x.address);
        // Whole milliseconds, rounded down: small integers, stored unboxed (83,000 elements took 17 MiB as "set address" → float).
        m.set(k, Math.max(m.get(k) ?? 0, Math.floor(x.expiry)));
      }
      if (++this.confirmsSincePrune >= 1000) this.prune();
      for (const p of f.items) p.resolve();
    } else {
      this.o.onEvent?.({ event: 'writer-refused', command: f.command.length > 300 ? `${f.command.slice(0, 300)}…` : f.command, error });
      if (f.items.length === 1) f.items[0]!.reject(new WriterError(`nft refused the insert: ${error}`));
      // One bad publish must not fail the others it was batched with: each goes again on its own.
      else this.queue.unshift(...f.items.map((p) => ({ ...p, alone: true })));
    }
    this.pump();
  }

  private pump(): void {
    if (this.inflight || this.closed) return;
    const child = this.child;
    if (!child?.ready) return;
    // Switch to the spare between commands, once it is up.
    if (this.spare?.ready) {
      const old = child;
      this.child = this.spare;
      this.spare = undefined;
      this.retire(old);
      return this.pump();
    }
    if (!this.queue.length) {
      if (child.commands >= this.o.recycleAfter && !this.spare) this.spawn();
      return;
    }
    const items: Pending[] = [];
    let count = 0;
    while (this.queue.length) {
      const p = this.queue[0]!;
      if (items.length && (p.alone || items[0]!.alone || count + p.elements.length > this.o.maxBatch)) break;
      items.push(this.queue.shift()!);
      count += p.elements.length;
    }
    const { command, expiries } = this.command(items);
    const sync = this.nextSync++;
    const timer = setTimeout(() => this.stalled(child, sync), this.o.stallMs);
    this.inflight = { child, sync, items, command, expiries, timer };
    child.commands++;
    child.started.write(`${command}\negress-sync ${sync}\n`);
  }

  /** One transaction for all of `items`: per set, the longest timeout asked for each address, never shorter than what is left. */
  private command(items: Pending[]): { command: string; expiries: InFlight['expiries'] } {
    const now = this.o.now();
    const bySet = new Map<string, Map<string, number>>();
    for (const p of items)
      for (const e of p.elements) {
        let m = bySet.get(e.set);
        if (!m) bySet.set(e.set, (m = new Map()));
        const left = Math.ceil(((this.expiry(e.set, e.address) ?? 0) - now) / 1000);
        const t = Math.min(MAX_TIMEOUT_SEC, Math.max(Math.ceil(e.timeoutSec), left, m.get(e.address) ?? 0));
        m.set(e.address, t);
      }
    const expiries: InFlight['expiries'] = [];
    const parts: string[] = [];
    const timeouts = (m: Map<string, number>, addrs: Iterable<string>) => [...addrs].map((a) => `${a} timeout ${m.get(a)}s`).join(', ');
    for (const [set, m] of bySet) {
      const target = `element ${this.o.table} ${set}`;
      const fresh = this.o.refresh === 'delete-readd' ? [...m.keys()].filter((a) => !((this.expiry(set, a) ?? 0) - now > SAFE_READD_MS)) : [];
      parts.push(`add ${target} { ${timeouts(m, m.keys())} }`);
      if (fresh.length) parts.push(`delete ${target} { ${fresh.join(', ')} }`, `add ${target} { ${timeouts(m, fresh)} }`);
      for (const [a, t] of m) expiries.push({ set, address: a, expiry: now + t * 1000 });
    }
    return { command: parts.join('; '), expiries };
  }

  private stalled(child: Child, sync: number): void {
    if (this.inflight?.child !== child || this.inflight.sync !== sync) return;
    // Kill it: died() fails what was pending and restarts.
    void child.started.stop();
  }

  private died(child: Child, reason: string): void {
    if (child === this.spare) {
      this.spare = undefined;
      return;
    }
    if (child !== this.child) return; // a retired child
    this.child = undefined;
    if (this.closed) return;
    // What it had in flight and what waits fail now: the forwarder answers SERVFAIL at once, not at holdMs.
    this.failAll(new WriterError(`the nft writer died: ${reason}`));
    // Its spare, if it has one, takes over at once.
    if (this.spare) {
      this.child = this.spare;
      this.spare = undefined;
      this.o.onEvent?.({ event: 'writer-down', reason, restartInMs: 0 });
      if (this.child.ready) for (const w of this.upWaiters.splice(0)) w();
      return;
    }
    const delay = Math.min(this.o.backoffMs.max, this.o.backoffMs.min * 2 ** this.failures);
    this.failures++;
    this.o.onEvent?.({ event: 'writer-down', reason, restartInMs: delay });
    this.restartTimer = setTimeout(() => {
      if (!this.closed && !this.child) this.spawn();
    }, delay);
  }

  private failAll(err: Error): void {
    const f = this.inflight;
    if (f) {
      clearTimeout(f.timer);
      this.inflight = undefined;
      for (const p of f.items) p.reject(err);
    }
    for (const p of this.queue.splice(0)) p.reject(err);
  }

  private retire(c: Child): void {
    const p = c.started.stop().finally(() => this.retired.delete(p));
    this.retired.add(p);
  }

  private expiry(set: string, address: string): number | undefined {
    return this.known.get(set)?.get(packAddress(address));
  }

  private prune(): void {
    this.confirmsSincePrune = 0;
    const now = this.o.now();
    for (const m of this.known.values()) for (const [k, v] of m) if (v <= now) m.delete(k);
  }
}
