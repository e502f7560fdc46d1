#!/usr/bin/env node
// The JSON Schema of every command's --json envelope, from the TypeScript
// types of their results (src/cli/results.ts, read by ts-json-schema-generator):
// schema/json/COMMAND.schema.json, one self-contained file per command, each
// with the definitions its result reaches. Part of `npm run build`; the tests
// validate every command's output against these files (test/json.ts).
//
//   node scripts/write-json-schemas.mjs [--check]   (--check: exit 1 when a file would change)
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGenerator } from 'ts-json-schema-generator';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'schema', 'json');
const check = process.argv.includes('--check');

const generator = createGenerator({
  path: join(root, 'src/cli/results.ts'),
  tsconfig: join(root, 'tsconfig.json'),
  type: 'SchemaRoots',
  expose: 'export',
  topRef: true,
  jsDoc: 'extended',
  additionalProperties: false,
  skipTypeCheck: true,
  sortProps: true,
});

const all = generator.createSchema('SchemaRoots');
const defs = all.definitions;
const roots = defs.SchemaRoots;
const results = defs[refName(roots.properties.results.$ref)];
const inferred = JSON.stringify(all).includes('Failed to correctly infer');
if (inferred) throw new Error('ts-json-schema-generator could not infer a type reached from src/cli/results.ts: give it an explicit, exported type');

function refName(ref) {
  return decodeURIComponent(ref.replace(/^#\/definitions\//, ''));
}

/** The definitions a schema reaches through $ref, transitively. */
function reached(schema) {
  const seen = new Set();
  const walk = (x) => {
    if (Array.isArray(x)) return x.forEach(walk);
    if (!x || typeof x !== 'object') return;
    if (typeof x.$ref === 'string') {
      const n = refName(x.$ref);
      if (!seen.has(n)) {
        seen.add(n);
        walk(defs[n]);
      }
    }
    for (const v of Object.values(x)) walk(v);
  };
  walk(schema);
  return [...seen].sort();
}

const files = new Map();
for (const [command, ref] of Object.entries(results.properties)) {
  const resultRef = { $ref: ref.$ref };
  const properties = {
    ok: { type: 'boolean', description: 'False exactly when the command exits 1 or 2.' },
    command: { const: command, type: 'string' },
    version: { type: 'string', description: "egress's version." },
    result: { anyOf: [resultRef, { type: 'null' }], description: 'The result; null when the command could not produce it (its diagnostics say why).' },
    diagnostics: { type: 'array', items: roots.properties.diagnostic },
  };
  // explain of one flow: its answer's verdict, audit and rules beside the envelope's fields, as SPEC §3 has them.
  if (command === 'explain') {
    const answer = defs.Answer.properties;
    Object.assign(properties, { verdict: answer.verdict, audit: answer.audit, rules: answer.rules });
  }
  const schema = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `https://egress.invalid/schema/json/${command}.schema.json`,
    title: `egress ${command} --json`,
    description: `The envelope egress ${command} --json prints (docs/json.md); its result is ${refName(ref.$ref)}.`,
    type: 'object',
    properties,
    required: ['ok', 'command', 'version', 'result', 'diagnostics'],
    additionalProperties: false,
  };
  schema.definitions = Object.fromEntries(reached(properties).map((n) => [n, defs[n]]));
  files.set(`${command}.schema.json`, JSON.stringify(schema, null, 2) + '\n');
}

let stale = 0;
if (!check) mkdirSync(outDir, { recursive: true });
const present = (() => {
  try {
    return readdirSync(outDir);
  } catch {
    return [];
  }
})();
for (const f of present)
  if (!files.has(f)) {
    stale++;
    if (!check) rmSync(join(outDir, f));
  }
for (const [f, text] of files) {
  let old;
  try {
    old = readFileSync(join(outDir, f), 'utf8');
  } catch {
    old = undefined;
  }
  if (old === text) continue;
  stale++;
  if (!check) writeFileSync(join(outDir, f), text);
}
if (check && stale) {
  console.error(`schema/json: ${stale} file(s) differ from src/cli/results.ts; run npm run build`);
  process.exit(1);
}
