/**
 * Asking the upstream servers: each attempt from a fresh socket (so a fresh
 * random source port) with a fresh random ID, and only a reply with that ID,
 * QR set and the same question is taken as the answer; anything else on the
 * socket is ignored (and counted). A UDP answer with TC=1 is asked again over
 * TCP, same server. A server that does not answer in time, or whose TCP
 * connection fails, is an error, and the next server is tried.
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import type { Endpoint } from './types.js';
import { answers, isTruncated, withId } from './wire.js';

export interface UpstreamOptions {
  timeoutMs: number;
  /** An attempt failed (timeout, socket error, a reply that was not the answer). */
  onError: (server: Endpoint, why: string) => void;
  /** A UDP answer had TC=1 and is being asked again over TCP. */
  onTcpRetry: () => void;
}

export class UpstreamError extends Error {}

/**
 * The upstream's answer to `query` (whose question is `question`), with the
 * ID of `query`. Tries each server in order; rejects when none answered.
 * `tcp` asks over TCP from the start (the client asked over TCP).
 */
export async function ask(servers: readonly Endpoint[], query: Buffer, question: Buffer, tcp: boolean, o: UpstreamOptions): Promise<Buffer> {
  const clientId = query.readUInt16BE(0);
  for (const s of servers) {
    try {
      let resp: Buffer | undefined;
      if (!tcp) {
        resp = await askUdp(s, query, question, o);
        if (isTruncated(resp)) {
          o.onTcpRetry();
          resp = undefined;
        }
      }
      resp ??= await askTcp(s, query, question, o);
      return withId(resp, clientId);
    } catch (e) {
      o.onError(s, (e as Error).message);
    }
  }
  throw new UpstreamError(servers.length ? 'no upstream server answered' : 'no upstream server is configured');
}

function askUdp(s: Endpoint, query: Buffer, question: Buffer, o: UpstreamOptions): Promise<Buffer> {
  const id = randomInt(0x10000);
  const out = withId(query, id);
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(s.address) ? 'udp6' : 'udp4');
    let done = false;
    const finish = (err: Error | undefined, resp?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(resp!);
    };
    const timer = setTimeout(() => finish(new UpstreamError(`no answer over UDP within ${o.timeoutMs} ms`)), o.timeoutMs);
    sock.on('error', (e) => finish(e));
    sock.on('message', (msg) => {
      if (answers(msg, id, question)) finish(undefined, msg);
      else o.onError(s, 'a reply over UDP that does not answer the question (ignored)');
    });
    // connect(): the kernel then drops datagrams from any other address and port.
    sock.connect(s.port, s.address, () => sock.send(out, (e) => e && finish(e)));
  });
}

function askTcp(s: Endpoint, query: Buffer, question: Buffer, o: UpstreamOptions): Promise<Buffer> {
  const id = randomInt(0x10000);
  const out = withId(query, id);
  return new Promise((resolve, reject) => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(out.length);
    const sock = net.connect({ host: s.address, port: s.port });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | undefined, resp?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(resp!);
    };
    const timer = setTimeout(() => finish(new UpstreamError(`no answer over TCP within ${o.timeoutMs} ms`)), o.timeoutMs);
    sock.on('error', (e) => finish(e));
    sock.on('connect', () => sock.write(Buffer.concat([len, out])));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        if (answers(msg, id, question)) return finish(undefined, msg);
        o.onError(s, 'a reply over TCP that does not answer the question (ignored)');
      }
    });
    sock.on('end', () => finish(new UpstreamError('TCP connection closed before the answer')));
  });
}
