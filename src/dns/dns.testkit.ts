/**
 * Test doubles for the forwarder: an upstream DNS server on 127.0.0.1 (UDP
 * and TCP on one port) whose answers a test scripts with dns-packet (an
 * encoder independent of our wire.ts), a writer that keeps its "kernel" in
 * memory, and clients that ask over UDP and pipelined TCP.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import type { Element, ElementWriter } from './types.js';

export type Script = (q: Packet, proto: 'udp' | 'tcp') => Packet | Buffer | 'drop' | Promise<Packet | Buffer | 'drop'>;

export class FakeUpstream {
  readonly asked: { name: string; type: string; proto: 'udp' | 'tcp' }[] = [];
  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    readonly port: number,
    public script: Script,
  ) {}

  static async start(script: Script, address = '127.0.0.1'): Promise<FakeUpstream> {
    for (let tries = 0; ; tries++) {
      const udp = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
      await new Promise<void>((r) => udp.bind(0, address, r));
      const port = udp.address().port;
      const tcp = net.createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, address, resolve);
        });
      } catch (e) {
        udp.close();
        if (tries > 20) throw e;
        continue;
      }
      const u = new FakeUpstream(udp, tcp, port, script);
      u.serve();
      return u;
    }
  }

  private async reply(msg: Buffer, proto: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    let q: Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    const question = q.questions?.[0];
    if (question) this.asked.push({ name: question.name, type: question.type, proto });
    const a = await this.script(q, proto);
    if (a === 'drop') return undefined;
    return Buffer.isBuffer(a) ? a : dnsPacket.encode(a);
  }

  private serve(): void {
    this.udp.on('message', (msg, rinfo) => {
      void this.reply(msg, 'udp').then((b) => b && this.udp.send(b, rinfo.port, rinfo.address));
    });
    this.tcp.on('connection', (c) => {
      c.on('error', () => {});
      let buf = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + msg.length);
          void this.reply(Buffer.from(msg), 'tcp').then((b) => {
            if (!b || c.destroyed) return;
            const len = Buffer.alloc(2);
            len.writeUInt16BE(b.length);
            c.write(Buffer.concat([len, b]));
          });
        }
      });
    });
  }

  async close(): Promise<void> {
    this.udp.close();
    await new Promise((r) => this.tcp.close(r));
  }
}

/** A response to `q` (same ID, question, RD) with these answers. */
export function respond(q: Packet, answers: Answer[], extra: Partial<Packet> = {}): Packet {
  return { id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers, ...extra };
}

export const a = (name: string, data: string, ttl = 30): Answer => ({ type: 'A', name, data, ttl, class: 'IN' });
export const aaaa = (name: string, data: string, ttl = 30): Answer => ({ type: 'AAAA', name, data, ttl, class: 'IN' });
export const cname = (name: string, data: string, ttl = 30): Answer => ({ type: 'CNAME', name, data, ttl, class: 'IN' });

/**
 * A writer whose kernel is a Map. `delayMs` holds each publish before it
 * commits; `fail` refuses. `events` records commits in order, so a test can
 * check that the commit came before the answer.
 */
export class FakeWriter implements ElementWriter {
  readonly kernel = new Map<string, number>();
  readonly calls: Element[][] = [];
  readonly events: string[] = [];
  delayMs = 0;
  fail = false;
  hang = false;
  /** When set, every publish waits for it before committing. */
  gate: Promise<void> | undefined;
  /** What `remainingMs` answers, by "set address" (absent: 0, not confirmed). */
  readonly sure = new Map<string, number>();

  remainingMs(set: string, address: string): number {
    return this.sure.get(`${set} ${address}`) ?? 0;
  }

  has(set: string, address: string): boolean {
    return this.kernel.has(`${set} ${address}`);
  }

  async publish(elements: readonly Element[]): Promise<void> {
    this.calls.push([...elements]);
    if (this.hang) return new Promise(() => {});
    if (this.gate) await this.gate;
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.fail) throw new Error('fake writer refuses');
    for (const e of elements) {
      this.kernel.set(`${e.set} ${e.address}`, e.timeoutSec);
      this.events.push(`commit ${e.set} ${e.address}`);
    }
  }

  async close(): Promise<void> {}
}

let nextId = 1;

const QTYPES: Record<string, number> = { A: 1, AAAA: 28, ANY: 255, SVCB: 64, HTTPS: 65, TXT: 16 };

/** A query message for `name`/`type` (EDNS with `udpSize` when given), built with dns-packet, qtype patched in (it knows no HTTPS). */
export function query(name: string, type: keyof typeof QTYPES | number = 'A', udpSize?: number): Buffer {
  const p: Packet = { id: nextId++ & 0xffff, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] };
  const b = dnsPacket.encode(p);
  b.writeUInt16BE(typeof type === 'number' ? type : QTYPES[type]!, b.length - 4);
  if (!udpSize) return b;
  const opt = Buffer.from([0, 0, 41, udpSize >> 8, udpSize & 0xff, 0, 0, 0, 0, 0, 0]);
  const out = Buffer.concat([b, opt]);
  out.writeUInt16BE(1, 10);
  return out;
}

export function askUdp(port: number, msg: Buffer, address = '127.0.0.1', timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no UDP answer'));
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(msg, port, address);
  });
}

/** Send every message on one TCP connection at once (pipelined); the answers in the order they came. */
export function askTcp(port: number, msgs: Buffer[], address = '127.0.0.1', raw?: Buffer): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, address);
    const out: Buffer[] = [];
    let buf = Buffer.alloc(0);
    c.on('error', reject);
    c.on('connect', () => {
      const frames = msgs.map((m) => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(m.length);
        return Buffer.concat([len, m]);
      });
      c.end(Buffer.concat([...(raw ? [raw] : []), ...frames]));
    });
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
    });
    c.on('close', () => resolve(out));
  });
}

export const decode = (b: Buffer): Packet => dnsPacket.decode(b);
export const rcodeOf = (b: Buffer): string => (dnsPacket.decode(b) as Packet & { rcode?: string }).rcode ?? '?';
export const isTc = (b: Buffer): boolean => (b.readUInt16BE(2) & 0x0200) !== 0;
export const addressesOf = (b: Buffer): string[] => (dnsPacket.decode(b).answers ?? []).filter((x) => x.type === 'A' || x.type === 'AAAA').map((x) => (x as { data: string }).data);
