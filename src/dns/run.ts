/**
 * The forwarder as a whole, for the CLI and life cycle to run: listeners,
 * the nft writer, logs as JSON lines, and a SIGTERM-friendly shutdown.
 */
import type { Execer } from '../kernel/exec.js';
import { Forwarder, type ForwarderSeams } from './forwarder.js';
import { NameTable } from './match.js';
import { NftWriter, type WriterEvent } from './nft-writer.js';
import type { Counters, ElementWriter, Endpoint, ForwarderConfig, ForwarderRecord } from './types.js';

export interface RunSeams extends Omit<ForwarderSeams, 'writer' | 'log'> {
  execer: Execer;
  /** Run nft in this network namespace (tests; the forwarder's own sockets stay where it runs). */
  netns?: string;
  /** Instead of the nft writer (tests). */
  writer?: ElementWriter;
  refresh?: 'readd' | 'delete-readd';
  /** Where log records go, one JSON object per line (without the newline). */
  log?: (line: string) => void;
}

export interface RunningForwarder {
  /** Resolves when the listeners are bound and the writer is up (publishes can be confirmed). */
  ready: Promise<void>;
  counters(): Counters;
  /** Where it listens (as bound: port 0 in the config becomes the port taken). */
  addresses(): { udp: Endpoint[]; tcp: Endpoint[] };
  /** Stop listening, let queries in progress finish, stop the writer. */
  close(): Promise<void>;
}

export class ForwarderConfigError extends Error {}

/** What is wrong with a config before anything is started; empty when it is usable. */
export function configProblems(config: ForwarderConfig): string[] {
  const problems: string[] = [];
  if (!config.listen.length) problems.push('no listen address');
  if (config.interfaces) {
    const { globs, port } = config.interfaces;
    if (!Array.isArray(globs) || !globs.every((g) => typeof g === 'string' && /^[A-Za-z0-9_.:@-]{1,15}\*?$/.test(g))) problems.push('interfaces.globs must be interface names (a trailing "*" matches a prefix)');
    if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push(`interfaces.port ${port} is not a port`);
  }
  if (!config.upstream.length) problems.push('no upstream server (dns.upstream, resolv.conf and systemd-resolved name none)');
  for (const n of [config.holdMs, config.graceSec, config.minLifetimeSec]) if (!Number.isFinite(n) || n < 0) problems.push(`${n} is not a duration`);
  try {
    new NameTable(config.names);
  } catch (e) {
    problems.push((e as Error).message);
  }
  return problems;
}

/**
 * Start the forwarder. Rejects when the config is unusable or a listener
 * cannot be bound; otherwise returns at once, with `ready` resolving once the
 * writer is up (until then named names get SERVFAIL: fail closed).
 */
export async function runForwarder(config: ForwarderConfig, seams: RunSeams): Promise<RunningForwarder> {
  const problems = configProblems(config);
  if (problems.length) throw new ForwarderConfigError(`the DNS forwarder cannot start: ${problems.join('; ')}`);
  const log = seams.log;
  const nft =
    seams.writer === undefined
      ? new NftWriter({
          execer: seams.execer,
          table: config.table,
          ...(seams.netns !== undefined ? { netns: seams.netns } : {}),
          ...(seams.refresh ? { refresh: seams.refresh } : {}),
          ...(log ? { onEvent: (e: WriterEvent) => log(JSON.stringify({ time: new Date().toISOString(), ...e })) } : {}),
        })
      : undefined;
  const writer = seams.writer ?? nft!;
  const { execer: _x, netns: _n, writer: _w, refresh: _r, log: _l, ...rest } = seams;
  const fwd = new Forwarder(config, { ...rest, writer, ...(log ? { log: (r: ForwarderRecord) => log(JSON.stringify(r)) } : {}) });
  try {
    await fwd.listen();
  } catch (e) {
    await writer.close();
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    ready: nft ? nft.up() : Promise.resolve(),
    counters: () => fwd.counters(),
    addresses: () => fwd.addresses(),
    close: () =>
      (closing ??= (async () => {
        await fwd.close();
        await writer.close();
      })()),
  };
}

/**
 * Close `fwd` on SIGTERM, SIGINT or SIGHUP, then exit 0 (the life cycle
 * stops the forwarder with SIGTERM). Returns a function that removes the
 * handlers.
 */
export function closeOnSignals(fwd: RunningForwarder, proc: NodeJS.Process = process): () => void {
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
  const on = () => {
    off();
    void fwd.close().finally(() => proc.exit(0));
  };
  const off = () => {
    for (const s of signals) proc.removeListener(s, on);
  };
  for (const s of signals) proc.on(s, on);
  return off;
}
