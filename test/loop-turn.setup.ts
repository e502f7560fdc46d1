/**
 * Setup file (vitest.config.ts): one full event-loop turn before and after
 * every test.
 *
 * vitest 3 (kept so the suite runs on Node 18) gives each report a test
 * worker sends the runner 60 s to be answered, and reads the answer only
 * when the worker's event loop turns; vitest 4 dropped that timeout
 * (vitest-dev/vitest#8297). Many tests here are synchronous (spawnSync of
 * the CLI), and synchronous tests run back to back never turn the loop: a
 * file of them that takes over 60 s in total fails with "[vitest-worker]:
 * Timeout calling onTaskUpdate" although every test passed. With a turn
 * around each test, only a test that is itself over its 60 s timeout
 * (which fails anyway) can still hit it.
 */
import { afterEach, beforeEach } from 'vitest';

/** Resolves after the loop has been through its poll phase, where the runner's answers are read. */
async function turn(): Promise<void> {
  // Two check phases apart: whichever phase this starts in, a poll phase lies between.
  await new Promise<void>((r) => setImmediate(r));
  await new Promise<void>((r) => setImmediate(r));
}

beforeEach(turn);
afterEach(turn);
