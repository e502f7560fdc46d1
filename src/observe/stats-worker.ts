/** A worker thread of the parallel stats reader (parallel.ts): one part in, its result (or why it cannot be read) posted back. */
import { parentPort, workerData } from 'node:worker_threads';
import { transferables } from './dest-table.js';
import { processPart, type Part } from './parallel.js';
import type { ParseOptions } from '../logs/parse-kernel.js';
import { ReadError } from '../logs/read.js';

const { part, opts, holdHead, progress } = workerData as { part: Part; opts: ParseOptions; holdHead: boolean; progress: boolean };
processPart(part, opts, holdHead, undefined, progress ? (bytes, lines) => parentPort!.postMessage({ progress: [bytes, lines] }) : undefined).then(
  // The destination table's arrays are moved, not copied (~10 MB for the 45,600 rows of bench/logs.mjs).
  (r) => parentPort!.postMessage(r, transferables(r.state.dests)),
  (e: unknown) => {
    if (e instanceof ReadError) parentPort!.postMessage({ unreadable: e.message });
    else throw e;
  },
);
