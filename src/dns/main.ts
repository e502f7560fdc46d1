/**
 * The forwarder as a process: `egress _dns-forwarder SPEC.json` (what the
 * life cycle starts, kernel/forwarder.ts), or `node dist/dns/main.js
 * SPEC.json` directly (tests and the benchmark).
 *
 * SPEC.json is `{ "config": ForwarderConfig, "logFile"?: path, "logMaxBytes"?: n, "control"?:
 * boolean, "refresh"?: "readd" | "delete-readd", "upstreamTimeoutMs"?: n,
 * "netns"?: name (nft runs there; tests and bench), "publishAfterAnswer"?:
 * boolean (test only), "countersFile"?: path, "pidFile"?: path }`.
 *
 * stdout: `ready {"udp":[…],"tcp":[…]}` once listening with the writer up.
 * Log records go to `logFile` (appended; renamed to `logFile.1` at
 * `logMaxBytes`, log-file.ts) or else stderr, one JSON object per line. SIGTERM/SIGINT close it cleanly. With `control: true` (tests) it
 * also reads commands from stdin, `counters` (answers `counters {…}`) and
 * `memory` (`memory {…}`, process.memoryUsage()), and
 * exits when stdin closes, so it never outlives whoever started it.
 */
import { readFileSync } from 'node:fs';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';
import { writeFileAtomic } from '../kernel/atomic.js';
import { realExecer } from '../kernel/exec.js';
import { processStartTime } from '../kernel/lock.js';
import { LOG_MAX_BYTES, RotatingLog } from './log-file.js';
import { closeOnSignals, runForwarder } from './run.js';
import type { ForwarderConfig } from './types.js';

interface Spec {
  config: ForwarderConfig;
  logFile?: string;
  control?: boolean;
  refresh?: 'readd' | 'delete-readd';
  upstreamTimeoutMs?: number;
  netns?: string;
  publishAfterAnswer?: boolean;
  /** `logFile` is renamed to `logFile.1` when it reaches this size (default 16 MiB). */
  logMaxBytes?: number;
  /** Where its counters are written (atomically, every COUNTERS_EVERY_MS), for `egress status`. */
  countersFile?: string;
  /** Where it writes its pid and start time once ready (and the unit that runs it, from EGRESS_DNS_UNIT), so a forwarder systemd restarted is found too. */
  pidFile?: string;
}

const COUNTERS_EVERY_MS = 2000;

/** Run the forwarder SPEC.json describes until SIGTERM (or, with `control`, until standard input closes). */
export async function forwarderProcess(path: string): Promise<void> {
  const spec = JSON.parse(readFileSync(path, 'utf8')) as Spec;
  const file = spec.logFile ? new RotatingLog(spec.logFile, spec.logMaxBytes ?? LOG_MAX_BYTES) : undefined;
  const fwd = await runForwarder(spec.config, {
    execer: realExecer(),
    log: file ? (line) => file.write(line) : (line) => void process.stderr.write(line + '\n'),
    ...(spec.refresh ? { refresh: spec.refresh } : {}),
    ...(spec.netns ? { netns: spec.netns } : {}),
    ...(spec.upstreamTimeoutMs ? { upstreamTimeoutMs: spec.upstreamTimeoutMs } : {}),
    ...(spec.publishAfterAnswer ? { publishAfterAnswer: true } : {}),
  });
  closeOnSignals(fwd);
  if (spec.countersFile) {
    const file = spec.countersFile;
    const write = () => writeFileAtomic(file, JSON.stringify({ time: new Date().toISOString(), pid: process.pid, ...fwd.counters() }) + '\n', 0o600);
    write();
    setInterval(() => {
      try {
        write();
      } catch {
        /* a full disk must not stop the forwarder; status then shows older counters */
      }
    }, COUNTERS_EVERY_MS).unref();
  }
  await fwd.ready;
  if (spec.pidFile) {
    const start = processStartTime(process.pid);
    const unit = process.env.EGRESS_DNS_UNIT;
    writeFileAtomic(spec.pidFile, JSON.stringify({ pid: process.pid, ...(start ? { start } : {}), ...(unit ? { unit } : {}) }) + '\n', 0o600);
  }
  process.stdout.write(`ready ${JSON.stringify(fwd.addresses())}\n`);
  if (!spec.control) return;
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() === 'counters') process.stdout.write(`counters ${JSON.stringify(fwd.counters())}\n`);
    if (line.trim() === 'memory') process.stdout.write(`memory ${JSON.stringify(process.memoryUsage())}\n`);
  });
  rl.on('close', () => void fwd.close().finally(() => process.exit(0)));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const path = process.argv[2];
  if (!path) {
    process.stderr.write('usage: main.js SPEC.json\n');
    process.exit(2);
  }
  forwarderProcess(path).catch((e: Error) => {
    process.stderr.write(`egress dns: ${e.message}\n`);
    process.exit(1);
  });
}
