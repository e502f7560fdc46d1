/** A worker thread of the parallel stats reader (parallel.ts): one part in, its result posted back. */
import { parentPort, workerData } from 'node:worker_threads';
import { processPart, type Part } from './parallel.js';
import type { ParseOptions } from '../logs/parse-kernel.js';

const { part, opts, holdHead } = workerData as { part: Part; opts: ParseOptions; holdHead: boolean };
parentPort!.postMessage(processPart(part, opts, holdHead));
