/**
 * `node --import ./test/cli/load-trace.mjs …` with EGRESS_LOAD_TRACE=FILE:
 * append to FILE the file: URL of every module the process loads, one a line
 * (ES modules from a loader hook, CommonJS ones from the require cache at
 * exit; a file may be listed twice). For tests of what a command loads and
 * for bench/startup.mjs's module counts; without the variable it does nothing.
 */
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';

const out = process.env.EGRESS_LOAD_TRACE;

if (out && isMainThread) {
  register(import.meta.url);
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => {
    const cjs = Object.keys(cache).map((f) => pathToFileURL(f).href);
    if (cjs.length) appendFileSync(out, cjs.join('\n') + '\n');
  });
}

/** The loader hook (it runs on the hooks thread). */
export async function load(url, context, next) {
  if (out && url.startsWith('file:')) appendFileSync(out, url + '\n');
  return next(url, context);
}
