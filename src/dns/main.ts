/**
 * The forwarder as a process: `node dist/dns/main.js SPEC.json`.
 *
 * SPEC.json is `{ "config": ForwarderConfig, "logFile"?: path, "control"?:
 * boolean, "refresh"?: "readd" | "delete-readd", "upstreamTimeoutMs"?: n,
 * "netns"?: name (nft runs there; tests and bench), "publishAfterAnswer"?:
 * boolean (test only) }`.
 *
 * stdout: `ready {"udp":[…],"tcp":[…]}` once listening with the writer up.
 * Log records go to `logFile` (appended) or else stderr, one JSON object per
 * line. SIGTERM/SIGINT close it cleanly. With `control: true` (tests) it
 * also reads commands from stdin, `counters` (answers `counters {…}`) and
 * `memory` (`memory {…}`, process.memoryUsage()), and
 * exits when stdin closes, so it never outlives whoever started it.
 */
import { createWriteStream, readFileSync } from 'node:fs';
import readline from 'node:readline';
import { realExecer } from '../kernel/exec.js';
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
}

async function main(argv: string[]): Promise<void> {
  const path = argv[0];
  if (!path) throw new Error('usage: main.js SPEC.json');
  const spec = JSON.parse(readFileSync(path, 'utf8')) as Spec;
  const out = spec.logFile ? createWriteStream(spec.logFile, { flags: 'a' }) : process.stderr;
  const fwd = await runForwarder(spec.config, {
    execer: realExecer(),
    log: (line) => void out.write(line + '\n'),
    ...(spec.refresh ? { refresh: spec.refresh } : {}),
    ...(spec.netns ? { netns: spec.netns } : {}),
    ...(spec.upstreamTimeoutMs ? { upstreamTimeoutMs: spec.upstreamTimeoutMs } : {}),
    ...(spec.publishAfterAnswer ? { publishAfterAnswer: true } : {}),
  });
  closeOnSignals(fwd);
  await fwd.ready;
  process.stdout.write(`ready ${JSON.stringify(fwd.addresses())}\n`);
  if (!spec.control) return;
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() === 'counters') process.stdout.write(`counters ${JSON.stringify(fwd.counters())}\n`);
    if (line.trim() === 'memory') process.stdout.write(`memory ${JSON.stringify(process.memoryUsage())}\n`);
  });
  rl.on('close', () => void fwd.close().finally(() => process.exit(0)));
}

main(process.argv.slice(2)).catch((e: Error) => {
  process.stderr.write(`egress dns: ${e.message}\n`);
  process.exit(1);
});
