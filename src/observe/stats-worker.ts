/** A worker thread of the parallel stats reader (parallel.ts): one part in, its result (or why it cannot be read) posted back. */
import { parentPort, workerData } from 'node:worker_threads';
import { processPart, type Part } from './parallel.js';
import type { ParseOptions } from '../logs/parse-kernel.js';
import { ReadError } from '../logs/read.js';

const { part, opts, holdHead, progress } = workerData as { part: Part; opts: ParseOptions; holdHead: boolean; progress: boolean };
processPart(part, opts, holdHead, undefined, progress ? (bytes, lines) => parentPort!.postMessage({ progress: [bytes, lines] }) : undefined).then(
  (r) => parentPort!.postMessage(r),
  (e: unknown) => {
    if (e instanceof ReadError) parentPort!.postMessage({ unreadable: e.message });
    else throw e;
  },
);
