#!/usr/bin/env node
/**
 * The shipped program: dist/ (tsc's output, the code the tests run) bundled
 * by esbuild into dist/bundle/, with no node_modules needed at run time.
 * This is what bin/egress.js, the npm package and the Debian package run.
 *
 * - egress.js: the CLI. Code-split (ESM chunks beside it), so a command
 *   still loads only its own code: `--version` reads commander and the
 *   command table, not zod, yaml or a backend (src/cli/main.ts).
 * - stats-worker.js: the parallel log reader's worker thread, found by
 *   src/observe/parallel.ts as ./stats-worker.js next to its own code.
 * - dns-forwarder.js: the DNS forwarder as a program of its own (lab starts
 *   it as a process; src/lab/lab.ts looks for it next to its own code).
 *   Both are built whole, not split: each is started by path and checks
 *   that it is the main module.
 *
 * Target: Node 18, the oldest Node the distributions ship (README).
 */
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'bundle');

// commander is CommonJS; in an ESM bundle its require() of node builtins needs a real require.
const banner = { js: "import { createRequire as __egressRequire } from 'node:module'; const require = __egressRequire(import.meta.url);" };
const common = { bundle: true, platform: 'node', format: 'esm', target: 'node18', banner, legalComments: 'none', logLevel: 'warning', minifyWhitespace: true, minifySyntax: true };

rmSync(out, { recursive: true, force: true });
await build({ ...common, entryPoints: { egress: join(dist, 'cli', 'run.js'), index: join(dist, 'index.js') }, outdir: out, splitting: true, chunkNames: 'chunk-[hash]' });
await build({ ...common, entryPoints: { 'stats-worker': join(dist, 'observe', 'stats-worker.js'), 'dns-forwarder': join(dist, 'dns', 'main.js') }, outdir: out });
