/**
 * The folder list reads as the pipeline (docs/architecture.md): a stage
 * imports only from stages before it, so nothing reaches upward and no two
 * stages depend on each other. Test kits and tests are exempt.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { expect, test } from 'vitest';
import { ROOT } from './paths.js';

const SRC = join(ROOT, 'src');
/** In pipeline order; `index.ts` is the library entry (front end + compilePolicy). */
const STAGES = ['diag', 'policy', 'resolve', 'ir', 'sim', 'lint', 'backends', 'index.ts', 'plan', 'kernel', 'dns', 'lab', 'bench', 'logs', 'observe', 'report', 'cli'];

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* sources(p);
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.includes('.testkit.')) yield p;
  }
}

const stageOf = (file: string) => relative(SRC, file).split('/')[0]!;

test('every folder of src/ is a stage in docs/architecture.md, in order', () => {
  const doc = readFileSync(join(SRC, '..', 'docs', 'architecture.md'), 'utf8');
  const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  expect(folders.filter((f) => !STAGES.includes(f))).toEqual([]);
  for (const f of folders) expect(doc, `docs/architecture.md has no section for ${f}/`).toContain(`${f}/`);
});

test('no stage imports from a later one', () => {
  const upward: string[] = [];
  for (const file of sources(SRC)) {
    const me = STAGES.indexOf(stageOf(file));
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import\(?)\s*'(\.[^']+)'/g)) {
      const target = resolve(dirname(file), m[1]!);
      const them = STAGES.indexOf(stageOf(target));
      if (them > me) upward.push(`${relative(SRC, file)} (${stageOf(file)}) imports ${relative(SRC, target)} (${stageOf(target)})`);
    }
  }
  expect(upward).toEqual([]);
});
