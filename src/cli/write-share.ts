/**
 * Build step (npm run build): write dist/share/egress.8, egress.bash and
 * _egress from the command tree (share.ts). The Debian package installs
 * them as /usr/share/man/man8/egress.8.gz,
 * /usr/share/bash-completion/completions/egress and
 * /usr/share/zsh/vendor-completions/_egress; never edit the outputs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProgram } from './main.js';
import { bashCompletion, describeProgram, manPage, zshCompletion } from './share.js';

const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'share');
// The tree only: nothing runs, so the io goes nowhere.
const doc = describeProgram(buildProgram({ stdout: () => {}, stderr: () => {}, env: {}, cwd: '/' }, () => {}));
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'egress.8'), manPage(doc));
writeFileSync(join(out, 'egress.bash'), bashCompletion(doc));
writeFileSync(join(out, '_egress'), zshCompletion(doc));
