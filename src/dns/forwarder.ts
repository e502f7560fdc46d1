/**
 * The DNS forwarder: answers local programs' queries through the upstream
 * servers, and for a name that a policy rule names puts the answered
 * addresses into that rule's kernel sets BEFORE the answer is released.
 *
 * Per query (`handle`):
 * 1. Not a DNS query we can read → dropped, counted as malformed.
 * 2. A deny rule names it → REFUSED, nothing asked, nothing published.
 * 3. An allow rule names it and it asks for HTTPS/SVCB → NODATA: their
 *    address hints would bypass the sets.
 * 4. Ask upstream (upstream.ts). No answer → SERVFAIL.
 * 5. Not named → the answer as it came (TC=1 if too large for a UDP client).
 * 6. Named → the A/AAAA of the name and its CNAME chain, at most `cap` per
 *    family (the rest are taken out of the answer, so the program is never
 *    told an address that was not published), published into every matching
 *    allow rule's sets for max(minLifetime, TTL + grace) seconds. Only when
 *    the writer confirms the commit is the answer sent; no confirmation within
 *    holdMs → SERVFAIL, never a late answer.
 * 7. Fast path: when the writer itself confirmed EVERY element of the answer
 *    and each has at least `surelySec(ttl)` = max(minLifetimeSec, TTL +
 *    FAST_MARGIN_SEC) seconds left (TTL: the largest TTL the answer gives
 *    that address), the answer leaves at once; the refresh to the full
 *    lifetime is written once it is sent and committed in the background
 *    (`fastAnswers`; a refresh that fails counts in `refreshFailures`),
 *    except for elements that already have all but a second of that
 *    lifetime left (a busy pool is answered many times a second; writing
 *    each answer again kept nft busy for a gain of milliseconds).
 *
 * Why the fast path admits nothing late and shortens nothing:
 * - Holding buys one thing: the elements are in the kernel before the
 *   program can use the answer. An element the writer confirmed with an
 *   expiry E is in the kernel until E at least: E was computed from the
 *   moment the command was built, before the kernel's timer started, and
 *   both clocks are CLOCK_MONOTONIC (the kernel's jiffies advance from it),
 *   apart from tick rounding (ms). A plain re-add or add;delete;add of a
 *   live element is one transaction, atomic for the packet path, so a
 *   refresh in flight never makes it absent. So at release the elements are
 *   there, as they would be after a held commit.
 * - How long they stay: the program may use the address for the TTL the
 *   answer gives it; min_lifetime covers TTL-0 answers and programs that
 *   keep an address that briefly. Each element has at least max(min_lifetime,
 *   TTL + 10 s) left at release, without the refresh. The refresh (normally
 *   committed within milliseconds) then extends it to max(min_lifetime, TTL +
 *   grace) from its commit, like a held answer's. Only when the refresh
 *   fails (writer dying at that moment) does the element keep just what it
 *   had: still ≥ the TTL + 10 s the program was told it could use, where a
 *   held answer would have been SERVFAIL. The margin is fixed, not `grace`:
 *   with grace < 10 s the fast path is taken only while a longer lifetime
 *   from an earlier answer is still running.
 * - A refresh never shortens (the writer asks for at least what is left).
 * - What the writer "confirmed" is only as true as "nothing but this writer
 *   removes elements from these sets". The life cycle's reload (apply,
 *   rollback) replaces the table in one transaction and carries the live
 *   elements with the time they had left (truncated to the second, less
 *   than the margin), so they stay. An element this writer confirmed after
 *   apply read the table and before it loaded the new one is lost by that
 *   load (a race of the reload that also strikes held answers given in that
 *   window); the first fast answer naming it afterwards re-creates it with
 *   its background add, milliseconds after the answer left.
 * - Anything the writer did not confirm, or that runs out sooner (an
 *   address never published, published by another process or an earlier
 *   forwarder and carried by apply, close to expiry), is held as in step 6.
 * 8. Logs (the `log` seam): `dns-publish` per published answer, `dns-refused`
 *    per refused query, `dns-answer` per forwarded A/AAAA answer (step 5,
 *    after it was sent).
 *
 * Nothing here decides about I/O beyond the sockets it serves: logs go to
 * the `log` seam, the kernel is behind `ElementWriter`.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { specialPurpose } from '../policy/address.js';
import { ifaceMatches } from '../sim/flow.js';
import { NameTable } from './match.js';
import { UidLookup } from './uid.js';
import { ask } from './upstream.js';
import type { Counters, Element, ElementWriter, Endpoint, ForwarderConfig, ForwarderRecord } from './types.js';
import { zeroCounters } from './types.js';
import { chainAddresses, emptyAnswer, nameText, parseQuery, parseResponse, qtypeText, RCODE, rebuildAnswer, truncatedAnswer, TYPE, type FoundAddress, type Query, type Rr } from './wire.js';

export interface Client {
  proto: 'udp' | 'tcp';
  address: string;
  port: number;
  /** When the query arrived (performance.now()), for the uid lookup. */
  arrived?: number;
}

export interface ForwarderSeams {
  writer: ElementWriter;
  /** One record per published answer, per refused query and per forwarded A/AAAA answer. */
  log?: (r: ForwarderRecord) => void;
  /** Who owns the client's socket; default: /proc/net (uid.ts). `null`: do not look. */
  uidOf?: ((c: Client) => Promise<number | undefined>) | null;
  /** Per upstream attempt. Default 2000. */
  upstreamTimeoutMs?: number;
  /** Most addresses per family per answer. Default 256. */
  capPerFamily?: number;
  /** Most pipelined TCP queries in progress per connection before reading pauses. Default 64. */
  tcpPipeline?: number;
  /** An idle TCP connection is closed after this long. Default 30 s. */
  tcpIdleMs?: number;
  /**
   * TEST ONLY, the negative control: send the answer first and publish
   * after, as a forwarder that does not hold answers would. Never set it in
   * production: programs then connect before their address is admitted.
   */
  publishAfterAnswer?: boolean;
  /** Wall clock for log records. */
  now?: () => Date;
  /** The host's interfaces and their addresses (default `os.networkInterfaces`), for `config.interfaces`. */
  networkInterfaces?: () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  /** How often the interfaces of `config.interfaces` are looked at again. Default 2000 ms. */
  rescanMs?: number;
}

/** What to send back, and what to do once it is sent. */
export interface Reply {
  response: Buffer;
  after?: () => void | Promise<void>;
}

const HOLD_TIMEOUT = Symbol('hold timeout');
/** Seconds beyond the TTL an element must surely live for its answer to leave without holding (see the header). */
export const FAST_MARGIN_SEC = 10;
/** Without holding, an element with at least its full lifetime minus this left is not refreshed again. */
export const REFRESH_SLACK_MS = 1000;
/** Longest an answer waits for the asker's uid lookup (for the log only). */
const UID_WAIT_MS = 2;
/**
 * Forwarded answers whose asker is looked up, at most, per second. Their uid
 * is only for the log, and the /proc/net read is the dearest step under load
 * (bench/dns.mjs: looking up every one doubled the forwarded answers' p50),
 * so beyond this the `dns-answer` records go without it.
 */
const ANSWER_UIDS_PER_SEC = 20;

async function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((r) => (t = setTimeout(r, ms)))]);
  clearTimeout(t);
}

export class Forwarder {
  private readonly table: NameTable;
  private readonly c: Counters = zeroCounters();
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly conns = new Set<net.Socket>();
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly uidOf: ((c: Client) => Promise<number | undefined>) | null;
  private closed = false;
  /** Sockets on forward sources' interface addresses (`config.interfaces`), by address. */
  private readonly onInterfaces = new Map<string, { udp: dgram.Socket; tcp: net.Server }>();
  private rescanTimer: NodeJS.Timeout | undefined;
  private rescanning: Promise<void> | undefined;
  /** The second (performance.now() / 1000) and the forwarded-answer uid lookups left in it. */
  private answerUids = { second: -1, left: 0 };

  constructor(
    private readonly config: ForwarderConfig,
    private readonly seams: ForwarderSeams,
  ) {
    this.table = new NameTable(config.names);
    if (seams.uidOf === undefined) {
      const lookup = new UidLookup();
      this.uidOf = (c) => lookup.uid(c.proto, c.address, c.port, c.arrived ?? 0);
    } else this.uidOf = seams.uidOf;
  }

  counters(): Counters {
    return { ...this.c };
  }

  /** Bind every listen endpoint, UDP and TCP. Rejects (and closes what was bound) when one cannot be bound. */
  async listen(): Promise<void> {
    try {
      for (const ep of this.config.listen) {
        this.udp.push(await this.bindUdp(ep));
        this.tcp.push(await this.bindTcp(ep));
      }
    } catch (e) {
      await this.close();
      throw e;
    }
    if (this.config.interfaces) {
      await this.rescan();
      this.rescanTimer = setInterval(() => void this.rescan(), this.seams.rescanMs ?? 2000);
      this.rescanTimer.unref();
    }
  }

  /**
   * Listen on every address of the forward sources' interfaces, and no
   * longer on those gone: Docker makes a bridge for each network when the
   * network is made. An address that cannot be bound yet (IPv6 still
   * tentative) is tried again at the next look. Link-local IPv6 addresses are
   * left out: the kernel's redirect never picks them.
   */
  rescan(): Promise<void> {
    this.rescanning ??= this.rescanOnce().finally(() => (this.rescanning = undefined));
    return this.rescanning;
  }

  private async rescanOnce(): Promise<void> {
    const spec = this.config.interfaces;
    if (!spec || this.closed) return;
    const want = new Set<string>();
    for (const [name, addrs] of Object.entries((this.seams.networkInterfaces ?? os.networkInterfaces)())) {
      if (!spec.globs.some((g) => ifaceMatches(g, name))) continue;
      for (const a of addrs ?? []) if (!a.internal && !(a.family === 'IPv6' && /^fe[89ab]/i.test(a.address))) want.add(a.address);
    }
    for (const [address, socks] of this.onInterfaces)
      if (!want.has(address)) {
        socks.udp.close();
        socks.tcp.close();
        this.onInterfaces.delete(address);
      }
    for (const address of want) {
      if (this.onInterfaces.has(address) || this.closed) continue;
      const ep = { address, port: spec.port };
      let udp: dgram.Socket | undefined;
      try {
        udp = await this.bindUdp(ep);
        const tcp = await this.bindTcp(ep);
        if (this.closed) {
          udp.close();
          tcp.close();
          return;
        }
        this.onInterfaces.set(address, { udp, tcp });
      } catch {
        udp?.close();
      }
    }
  }

  /** The forward sources' interface addresses it listens on now, with the UDP port (port 0 in the config = any free one). */
  interfaceEndpoints(): Endpoint[] {
    return [...this.onInterfaces].map(([address, s]) => ({ address, port: s.udp.address().port })).sort((a, b) => (a.address < b.address ? -1 : 1));
  }

  /** Where it actually listens (port 0 in the config = any free port). */
  addresses(): { udp: Endpoint[]; tcp: Endpoint[] } {
    return {
      udp: this.udp.map((s) => ({ address: s.address().address, port: s.address().port })),
      tcp: this.tcp.map((s) => {
        const a = s.address() as net.AddressInfo;
        return { address: a.address, port: a.port };
      }),
    };
  }

  /**
   * Stop taking queries, let those in progress be answered (at most
   * `graceMs`), then close every socket. The writer is the caller's.
   */
  async close(graceMs = 3000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    await this.rescanning;
    for (const s of this.tcp) s.close();
    for (const x of this.onInterfaces.values()) x.tcp.close();
    if (this.inflight.size) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.inflight]), new Promise((r) => (t = setTimeout(r, graceMs)))]);
      clearTimeout(t);
    }
    for (const s of this.udp) s.close();
    for (const x of this.onInterfaces.values()) x.udp.close();
    this.onInterfaces.clear();
    for (const c of this.conns) c.destroy();
  }

  /** Judge, ask, publish: the reply for one query message, or undefined to drop it. */
  async handle(msg: Buffer, client: Client): Promise<Reply | undefined> {
    let q: Query;
    try {
      q = parseQuery(msg);
    } catch {
      this.c.malformed++;
      return undefined;
    }
    this.c.queries++;
    if (q.opcode !== 0) return { response: emptyAnswer(q, RCODE.NOTIMP) };
    const j = q.qclass === 1 ? this.table.judgeLabels(q.labels) : { allow: [], deny: [] };
    const name = nameText(q.labels);
    if (j.deny.length) {
      this.c.refused++;
      this.seams.log?.({ time: this.time(), event: 'dns-refused', name, qtype: qtypeText(q.qtype), rules: unique(j.deny.map((d) => d.rule)), proto: client.proto });
      return { response: emptyAnswer(q, RCODE.REFUSED) };
    }
    const named = j.allow.length > 0;
    if (named && (q.qtype === TYPE.HTTPS || q.qtype === TYPE.SVCB)) {
      this.c.strippedHttps++;
      this.c.answered++;
      return { response: emptyAnswer(q, RCODE.NOERROR) };
    }
    // A forwarded A/AAAA answer gets a `dns-answer` record (for stats and learn), written after it is sent.
    const logAnswer = !named && !!this.seams.log && (q.qtype === TYPE.A || q.qtype === TYPE.AAAA);
    // Look for the asker now, while its socket surely exists; awaited only for the log line.
    const uid = this.uidOf && (named || (logAnswer && this.answerUidAllowed())) ? this.uidOf(client).catch(() => undefined) : undefined;

    let resp: Buffer;
    try {
      resp = await ask(this.config.upstream, msg, q.question, client.proto === 'tcp', {
        timeoutMs: this.seams.upstreamTimeoutMs ?? 2000,
        onError: () => void this.c.upstreamErrors++,
        onTcpRetry: () => void this.c.upstreamTcpRetries++,
      });
    } catch {
      return this.servfail(q);
    }
    if (!named) {
      const reply = this.fit(q, client, resp);
      if (logAnswer && reply.response === resp) reply.after = () => this.logAnswer(q, name, resp, client, uid);
      return reply;
    }

    let m;
    try {
      m = parseResponse(resp);
    } catch {
      // An answer we cannot read may hold addresses we cannot publish: never pass it on for a named name.
      this.c.upstreamErrors++;
      return this.servfail(q);
    }
    const found = m.rcode === RCODE.NOERROR ? chainAddresses(resp, m, q.labels) : [];
    // Loopback, link-local (the metadata service), multicast…: taken out of the answer, never published (D16).
    const special = new Set(found.filter((f) => specialPurpose(f.address)).map((f) => f.rr));
    const { kept, dropped } = this.cap(found.filter((f) => !special.has(f.rr)));
    for (const rr of special) dropped.add(rr);
    if (dropped.size) {
      this.c.capped += dropped.size - special.size;
      this.c.special += special.size;
      resp = rebuildAnswer(resp, m, (rr: Rr) => !dropped.has(rr));
    }
    if (client.proto === 'udp' && resp.length > q.udpSize) return this.fit(q, client, resp);

    const { elements, needSec } = this.elements(j.allow, kept);
    if (!elements.length) {
      this.c.answered++;
      return { response: resp };
    }
    const record = () => this.logPublish(q, name, j.allow.map((a) => a.rule), elements, kept, client, uid);
    if (!this.seams.publishAfterAnswer && this.surelyLive(elements, needSec)) {
      // Written once the answer is sent (building the nft command is not the answer's business); its outcome only counts.
      // An element that already has all but REFRESH_SLACK_MS of its full lifetime left is not written again (a busy
      // pool is answered many times a second).
      const stale = elements.filter((e) => this.seams.writer.remainingMs!(e.set, e.address) < e.timeoutSec * 1000 - REFRESH_SLACK_MS);
      const refresh = () =>
        (stale.length ? this.seams.writer.publish(stale) : Promise.resolve()).then(
          () => {
            this.c.published += stale.length;
            return record();
          },
          () => void this.c.refreshFailures++,
        );
      this.c.fastAnswers++;
      this.c.answered++;
      return { response: resp, after: refresh };
    }
    if (this.seams.publishAfterAnswer) {
      this.c.answered++;
      return {
        response: resp,
        after: () =>
          this.seams.writer.publish(elements).then(
            () => {
              this.c.published += elements.length;
              record();
            },
            () => void this.c.publishFailures++,
          ),
      };
    }
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      this.seams.writer.publish(elements).then(
        () => undefined,
        (e: Error) => e,
      ),
      new Promise<typeof HOLD_TIMEOUT>((r) => (timer = setTimeout(() => r(HOLD_TIMEOUT), this.config.holdMs))),
    ]);
    clearTimeout(timer);
    if (outcome === HOLD_TIMEOUT) {
      this.c.holdTimeouts++;
      return this.servfail(q);
    }
    if (outcome) {
      this.c.publishFailures++;
      return this.servfail(q);
    }
    this.c.published += elements.length;
    this.c.answered++;
    // A client closes its socket once answered; give a pending uid read a moment so the log can name the asker.
    if (uid) await settledWithin(uid, UID_WAIT_MS);
    return { response: resp, after: record };
  }

  private servfail(q: Query): Reply {
    this.c.servfail++;
    return { response: emptyAnswer(q, RCODE.SERVFAIL) };
  }

  /** The answer, or its TC=1 form when it is too large for a UDP client. */
  private fit(q: Query, client: Client, resp: Buffer): Reply {
    this.c.answered++;
    if (client.proto === 'udp' && resp.length > q.udpSize) {
      this.c.truncated++;
      return { response: truncatedAnswer(q, resp) };
    }
    return { response: resp };
  }

  private cap(found: FoundAddress[]): { kept: FoundAddress[]; dropped: Set<Rr> } {
    const limit = this.seams.capPerFamily ?? 256;
    const seen = { ipv4: new Set<string>(), ipv6: new Set<string>() };
    const kept: FoundAddress[] = [];
    const dropped = new Set<Rr>();
    for (const f of found) {
      const s = seen[f.family];
      if (s.has(f.address)) kept.push(f);
      else if (s.size < limit) {
        s.add(f.address);
        kept.push(f);
      } else dropped.add(f.rr);
    }
    return { kept, dropped };
  }

  private lifetime(ttl: number): number {
    return Math.max(this.config.minLifetimeSec, ttl + this.config.graceSec);
  }

  /** The elements to publish, and for each the seconds it must surely have left for the fast path: max(minLifetimeSec, TTL + FAST_MARGIN_SEC), TTL the largest the answer gives the address. */
  private elements(rules: ForwarderConfig['names'], found: FoundAddress[]): { elements: Element[]; needSec: number[] } {
    const out = new Map<string, { e: Element; need: number }>();
    for (const r of rules)
      for (const f of found) {
        const set = r.sets[f.family];
        if (!set) continue;
        const key = `${set} ${f.address}`;
        const timeoutSec = this.lifetime(f.ttl);
        const need = Math.max(this.config.minLifetimeSec, f.ttl + FAST_MARGIN_SEC);
        const had = out.get(key);
        if (!had) out.set(key, { e: { set, family: f.family, address: f.address, timeoutSec }, need });
        else {
          if (had.e.timeoutSec < timeoutSec) had.e = { ...had.e, timeoutSec };
          had.need = Math.max(had.need, need);
        }
      }
    const all = [...out.values()];
    return { elements: all.map((x) => x.e), needSec: all.map((x) => x.need) };
  }

  /** Whether the writer confirmed every element with at least its `needSec` left (see the header, step 7). */
  private surelyLive(elements: Element[], needSec: number[]): boolean {
    const w = this.seams.writer;
    if (!w.remainingMs) return false;
    for (let i = 0; i < elements.length; i++) if (w.remainingMs(elements[i]!.set, elements[i]!.address) < needSec[i]! * 1000) return false;
    return true;
  }

  private async logPublish(q: Query, name: string, rules: string[], elements: Element[], found: FoundAddress[], client: Client, uid: Promise<number | undefined> | undefined): Promise<void> {
    if (!this.seams.log) return;
    const u = await uid;
    const ttls = found.map((f) => f.ttl);
    this.seams.log({
      time: this.time(),
      event: 'dns-publish',
      name,
      qtype: qtypeText(q.qtype),
      rules: unique(rules),
      sets: unique(elements.map((e) => e.set)),
      addresses: unique(found.map((f) => f.address)),
      ttl: Math.min(...ttls),
      lifetime: Math.max(...elements.map((e) => e.timeoutSec)),
      proto: client.proto,
      ...(u !== undefined ? { uid: u } : {}),
    });
  }

  private answerUidAllowed(): boolean {
    const second = Math.floor(performance.now() / 1000);
    if (second !== this.answerUids.second) this.answerUids = { second, left: ANSWER_UIDS_PER_SEC };
    return this.answerUids.left-- > 0;
  }

  /** The `dns-answer` record of a forwarded answer; parsed only now, after it was sent, so the client does not wait for it. */
  private async logAnswer(q: Query, name: string, resp: Buffer, client: Client, uid: Promise<number | undefined> | undefined): Promise<void> {
    let found: FoundAddress[] = [];
    try {
      const m = parseResponse(resp);
      if (m.rcode === RCODE.NOERROR) found = chainAddresses(resp, m, q.labels);
    } catch {
      // an answer we cannot read is logged without addresses
    }
    const u = await uid;
    this.seams.log?.({
      time: this.time(),
      event: 'dns-answer',
      name,
      qtype: qtypeText(q.qtype),
      addresses: unique(found.map((f) => f.address)),
      ...(found.length ? { ttl: Math.min(...found.map((f) => f.ttl)) } : {}),
      proto: client.proto,
      ...(u !== undefined ? { uid: u } : {}),
    });
  }

  private time(): string {
    return (this.seams.now?.() ?? new Date()).toISOString();
  }

  /** Run `handle` and keep track of it, so close() can wait for it. */
  /** `send` resolves once the bytes are handed to the kernel, so close() does not cut them off. */
  private serve(msg: Buffer, client: Client, send: (b: Buffer) => Promise<void>): Promise<void> {
    const p = this.handle(msg, client)
      .then(async (reply) => {
        if (!reply) return;
        await send(reply.response);
        await reply.after?.();
      })
      .catch(() => {
        // handle() does not throw for bad input; this is a bug, and the query gets no answer rather than a crash.
        this.c.servfail++;
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    return p;
  }

  private bindUdp(ep: Endpoint): Promise<dgram.Socket> {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket({ type: net.isIPv6(ep.address) ? 'udp6' : 'udp4', ...(net.isIPv6(ep.address) ? { ipv6Only: true } : {}) });
      s.once('error', reject);
      s.on('message', (msg, rinfo) => {
        if (this.closed) return;
        void this.serve(
          msg,
          { proto: 'udp', address: rinfo.address, port: rinfo.port, arrived: performance.now() },
          (b) =>
            new Promise((resolve) => {
              try {
                s.send(b, rinfo.port, rinfo.address, () => resolve());
              } catch {
                resolve(); // closed after the grace period: the client asks again
              }
            }),
        );
      });
      s.bind({ address: ep.address, port: ep.port, exclusive: true }, () => {
        s.removeListener('error', reject);
        s.on('error', () => {});
        resolve(s);
      });
    });
  }

  private bindTcp(ep: Endpoint): Promise<net.Server> {
    const pipeline = this.seams.tcpPipeline ?? 64;
    const idle = this.seams.tcpIdleMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const server = net.createServer({ allowHalfOpen: true }, (conn) => {
        this.conns.add(conn);
        conn.setNoDelay(true);
        conn.setTimeout(idle, () => conn.destroy());
        conn.on('error', () => {});
        conn.on('close', () => this.conns.delete(conn));
        const client: Client = { proto: 'tcp', address: conn.remoteAddress ?? '', port: conn.remotePort ?? 0 };
        let buf: Buffer = Buffer.alloc(0);
        let inProgress = 0;
        let ended = false;
        const done = () => {
          inProgress--;
          if (conn.isPaused() && inProgress < pipeline) conn.resume();
          if (ended && inProgress === 0) conn.end();
        };
        conn.on('data', (d: Buffer) => {
          buf = buf.length ? Buffer.concat([buf, d]) : d;
          while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
            buf = buf.subarray(2 + msg.length);
            inProgress++;
            // Each pipelined query is judged on its own; answers go back as they are ready (RFC 7766 §6.2.1.1).
            void this.serve(Buffer.from(msg), { ...client, arrived: performance.now() }, (b) => {
              if (conn.destroyed || conn.writableEnded) return Promise.resolve();
              const len = Buffer.alloc(2);
              len.writeUInt16BE(b.length);
              return new Promise<void>((resolve) => conn.write(Buffer.concat([len, b]), () => resolve()));
            }).finally(done);
          }
          if (inProgress >= pipeline) conn.pause();
        });
        conn.on('end', () => {
          ended = true;
          if (inProgress === 0) conn.end();
        });
      });
      server.maxConnections = 1024;
      server.once('error', reject);
      server.listen({ host: ep.address, port: ep.port, exclusive: true, ...(net.isIPv6(ep.address) ? { ipv6Only: true } : {}) }, () => {
        server.removeListener('error', reject);
        server.on('error', () => {});
        resolve(server);
      });
    });
  }
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}
