/**
 * The malformed policies of the campaign (issue 12), shared by the check and
 * compile runs (policies.test.ts) and the live runs that apply each refused
 * one over a loaded ruleset (policies-live.kernel.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Case {
  name: string;
  /** The policy file's bytes, or a function that makes the path (for links, FIFOs, devices). */
  policy: string | Buffer | ((d: string) => string);
  /** Extra files next to it (set files). */
  files?: Record<string, string | Buffer | ((p: string) => void)>;
  /** The outcome the documented behaviour calls for, where only one is right. */
  want?: 'accepted' | 'refused';
  /** Big inputs: run `compile` alone (it loads and checks the same way) instead of check, then compile. */
  compileOnly?: boolean;
}

/** Write a case's files into `d`; returns the policy path to pass (relative to `d` where it is in `d`). */
export function materialize(c: Case, d: string): string {
  mkdirSync(d, { recursive: true });
  for (const [name, body] of Object.entries(c.files ?? {})) {
    if (typeof body === 'function') body(join(d, name));
    else writeFileSync(join(d, name), body);
  }
  return typeof c.policy === 'function' ? c.policy(d) : (writeFileSync(join(d, 'policy.yaml'), c.policy), 'policy.yaml');
}

export const RULE = (extra = '') => `  - name: web\n    reason: the web\n    to: [192.0.2.80, "2001:db8::80"]\n    ports: [tcp/443]\n${extra}`;
export const OK = `version: 1\ndefault: reject\nallow:\n${RULE()}`;

const laughs = (levels: number, width: number) => {
  let y = 'version: 1\nx0: &a0 [lol]\n';
  for (let l = 1; l <= levels; l++) y += `x${l}: &a${l} [${Array(width).fill(`*a${l - 1}`).join(', ')}]\n`;
  return y;
};

export const CASES: Record<string, Case[]> = {
  'alias bombs and reuse': [
    { name: 'billion laughs (9×9)', policy: laughs(9, 9), want: 'refused' },
    { name: 'billion laughs (20×2)', policy: laughs(20, 2), want: 'refused' },
    { name: 'laughs inside a rule', policy: `version: 1\nsets:\n  s0: &l0 [192.0.2.1, 192.0.2.2]\n${[1, 2, 3, 4, 5, 6, 7, 8].map((l) => `  s${l}: &l${l} [${Array(8).fill(`*l${l - 1}`).join(', ')}]`).join('\n')}\nallow:\n${RULE()}`, want: 'refused' },
    {
      name: '150 aliases to one small list (legitimate reuse)',
      policy: `version: 1\ndefault: reject\nallow:\n  - { name: r, reason: r, to: [192.0.2.1], ports: &p [tcp/443] }\n${Array.from({ length: 150 }, (_, k) => `  - { name: r${k}, reason: r, to: [192.0.2.${k % 250}], ports: *p }`).join('\n')}\n`,
      want: 'accepted',
    },
    { name: 'an alias to an undefined anchor', policy: `version: 1\nallow:\n  - { name: a, reason: r, to: *nope }\n`, want: 'refused' },
    // Failed before its fix: "internal error: Maximum call stack size exceeded".
    { name: 'an alias cycle through a merge key', policy: `version: 1\na: &a { <<: *a }\n`, want: 'refused' },
    { name: 'an alias inside its own list', policy: `version: 1\nallow:\n  - { name: a, reason: r, to: &t [192.0.2.1, *t] }\n`, want: 'refused' },
  ],
  'deep nesting': [
    { name: '100k [', policy: 'version: 1\nallow: ' + '['.repeat(100_000), want: 'refused' },
    { name: '100k [ closed', policy: 'version: 1\nallow: ' + '['.repeat(100_000) + ']'.repeat(100_000), want: 'refused' },
    { name: '3k block sequences', policy: 'version: 1\nallow:\n' + Array.from({ length: 3000 }, (_, k) => ' '.repeat(k) + '-').join('\n') + ' x\n', want: 'refused' },
    { name: '5k block mappings', policy: 'version: 1\nallow:\n' + Array.from({ length: 5000 }, (_, k) => ' '.repeat(k + 1) + 'k:').join('\n') + ' x\n', want: 'refused' },
    { name: '50k { in a flow mapping', policy: 'version: 1\nallow: ' + '{a: '.repeat(50_000), want: 'refused' },
  ],
  'huge lines': [
    // A policy over 4 MiB is refused whole (MAX_POLICY_BYTES): before, the 10 MB flow list below ran out of a 768 MiB heap.
    { name: '10 MB comment line', policy: `${OK}# ${'x'.repeat(10 << 20)}\n`, want: 'refused' },
    { name: '10 MB reason', policy: `version: 1\ndefault: reject\nallow:\n  - name: web\n    reason: "${'r'.repeat(10 << 20)}"\n    to: [192.0.2.80]\n    ports: [tcp/443]\n` },
    { name: '10 MB key', policy: `version: 1\n${'k'.repeat(10 << 20)}: 1\n`, want: 'refused' },
    { name: '3 MB of one flow list', policy: `version: 1\ndefault: reject\nallow:\n  - { name: web, reason: r, ports: [tcp/443], to: [${Array.from({ length: 200_000 }, (_, k) => `192.0.${(k >> 8) & 255}.${k & 255}`).join(', ')}] }\n`, want: 'accepted' },
    { name: '10 MB of one flow list', policy: `version: 1\ndefault: reject\nallow:\n  - { name: web, reason: r, ports: [tcp/443], to: [${Array.from({ length: 700_000 }, (_, k) => `192.0.${(k >> 8) & 255}.${k & 255}`).join(', ')}] }\n` },
    { name: '2 MB line without a newline at the end', policy: `${OK}# ${'y'.repeat(2 << 20)}`, want: 'accepted' },
  ],
  encodings: [
    { name: 'a Latin-1 byte', policy: Buffer.concat([Buffer.from(`${OK}# caf`), Buffer.from([0xe9]), Buffer.from('\n')]), want: 'refused' },
    { name: 'UTF-16LE with BOM', policy: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(OK, 'utf16le')]), want: 'refused' },
    { name: 'UTF-16BE with BOM', policy: Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(OK, 'utf16le').swap16()]), want: 'refused' },
    { name: 'UTF-8 BOM', policy: '\ufeff' + OK, want: 'accepted' },
    { name: 'a NUL byte in a reason', policy: OK.replace('the web', 'the\0web'), want: 'refused' },
    { name: 'an overlong UTF-8 sequence', policy: Buffer.concat([Buffer.from(`${OK}# `), Buffer.from([0xc0, 0xaf]), Buffer.from('\n')]), want: 'refused' },
    { name: 'a UTF-8 encoded surrogate', policy: Buffer.concat([Buffer.from(`${OK}# `), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('\n')]), want: 'refused' },
    { name: 'binary garbage', policy: Buffer.from(Array.from({ length: 4096 }, (_, k) => (k * 7919) & 255)), want: 'refused' },
    { name: 'terminal escapes in a key', policy: `version: 1\n"\x1b]0;owned\x07\x1b[2J": 1\n`, want: 'refused' },
  ],
  'line ends and whitespace': [
    { name: 'CRLF', policy: OK.replace(/\n/g, '\r\n'), want: 'accepted' },
    { name: 'CR only', policy: OK.replace(/\n/g, '\r'), want: 'refused' },
    { name: 'tab indentation', policy: OK.replace(/\n {2}- /g, '\n\t- '), want: 'refused' },
    { name: 'trailing spaces and blank lines', policy: OK.replace(/\n/g, '   \n\n'), want: 'accepted' },
    { name: 'U+2028 inside a plain scalar', policy: OK.replace('the web', 'the\u2028web') },
  ],
  'duplicate keys and wrong types': [
    { name: 'duplicate top-level key', policy: `${OK}default: drop\n`, want: 'refused' },
    { name: 'duplicate key in a rule', policy: `version: 1\nallow:\n${RULE('    ports: [tcp/80]\n')}`, want: 'refused' },
    { name: 'version "1"', policy: OK.replace('version: 1', 'version: "1"'), want: 'refused' },
    { name: 'version 1.0', policy: OK.replace('version: 1', 'version: 1.0') },
    { name: 'version 2', policy: OK.replace('version: 1', 'version: 2'), want: 'refused' },
    { name: 'a number for a name', policy: OK.replace('name: web', 'name: 12'), want: 'refused' },
    { name: 'a bool for a reason', policy: OK.replace('reason: the web', 'reason: true'), want: 'refused' },
    { name: 'null values', policy: `version: 1\ndefault:\nallow:\n  - name:\n    reason:\n`, want: 'refused' },
    { name: 'a mapping for a list', policy: OK.replace('ports: [tcp/443]', 'ports: { tcp: 443 }'), want: 'refused' },
    { name: 'empty lists', policy: `version: 1\nallow: []\ndeny: []\nsets: {}\n` },
    { name: 'port 65536', policy: OK.replace('tcp/443', 'tcp/65536'), want: 'refused' },
    { name: 'port 0', policy: OK.replace('tcp/443', 'tcp/0'), want: 'refused' },
    { name: 'a huge integer port', policy: OK.replace('tcp/443', 'tcp/99999999999999999999999'), want: 'refused' },
    { name: 'a huge version', policy: OK.replace('version: 1', 'version: 1e400'), want: 'refused' },
    { name: '__proto__ key', policy: `${OK}__proto__: { default: accept }\n`, want: 'refused' },
    { name: 'constructor key in a rule', policy: `version: 1\nallow:\n${RULE('    constructor: x\n')}`, want: 'refused' },
    { name: 'a list as the document', policy: `- version: 1\n`, want: 'refused' },
    { name: 'a scalar as the document', policy: `hello\n`, want: 'refused' },
  ],
  'YAML oddities': [
    { name: 'empty file', policy: '', want: 'refused' },
    { name: 'comments only', policy: '# nothing\n# here\n', want: 'refused' },
    { name: 'two documents', policy: `${OK}---\nversion: 1\ndefault: accept\n`, want: 'refused' },
    { name: 'a merge key', policy: `version: 1\nallow:\n  - &b { name: a, reason: r, ports: [tcp/443], to: [192.0.2.1] }\n  - { <<: *b, name: b, to: [192.0.2.2] }\n` },
    { name: '!!binary tag', policy: OK.replace('reason: the web', 'reason: !!binary aGVsbG8='), want: 'refused' },
    // Failed before its fix: the tag was dropped and the policy accepted as if it were not there.
    { name: 'a custom tag', policy: OK.replace('reason: the web', 'reason: !evil x'), want: 'refused' },
    { name: 'a JavaScript-looking tag', policy: OK.replace('reason: the web', 'reason: !!js/function "function(){}"'), want: 'refused' },
    { name: 'a directive', policy: `%YAML 1.1\n---\n${OK}` },
    { name: 'an unknown directive', policy: `%EVIL x\n---\n${OK}`, want: 'refused' },
    { name: '5000 rules', policy: `version: 1\ndefault: reject\nallow:\n${Array.from({ length: 5000 }, (_, k) => `  - { name: r${k}, reason: r, to: [192.0.${k >> 8}.${k & 255}], ports: [tcp/443] }`).join('\n')}\n`, want: 'accepted' },
    { name: 'a 65535-port list', policy: OK.replace('ports: [tcp/443]', `ports: [${Array.from({ length: 65535 }, (_, k) => `tcp/${k + 1}`).join(', ')}]`) },
  ],
  'set files': [
    { name: '1M contiguous addresses', policy: `version: 1\ndefault: reject\nsets:\n  big: { file: big.txt }\nallow:\n  - { name: big, reason: r, to: [$big], ports: [tcp/443] }\n`, files: { 'big.txt': Array.from({ length: 1 << 20 }, (_, k) => `10.${k >> 16}.${(k >> 8) & 255}.${k & 255}`).join('\n') + '\n' }, want: 'accepted', compileOnly: true },
    { name: '200k sparse IPv6 addresses', policy: `version: 1\ndefault: reject\nsets:\n  big: { file: big.txt }\nallow:\n  - { name: big, reason: r, to: [$big], ports: [tcp/443] }\n`, files: { 'big.txt': Array.from({ length: 200_000 }, (_, k) => `2001:db8:${((k * 7) & 0xffff).toString(16)}:${(k >> 4).toString(16)}::${((k * 13) & 0xffff).toString(16)}`).join('\n') + '\n' }, want: 'accepted', compileOnly: true },
    ...(
      [
        ['a directory', (p: string) => mkdirSync(p)],
        ['missing', () => {}],
        ['a link to /etc/shadow', (p: string) => symlinkSync('/etc/shadow', p)],
        ['/proc/self/environ', (p: string) => symlinkSync('/proc/self/environ', p)],
        ['a link loop', (p: string) => symlinkSync(p, p)],
        ['a dangling link', (p: string) => symlinkSync('/nonexistent/egress', p)],
        ['/dev/zero', (p: string) => symlinkSync('/dev/zero', p)],
        ['/dev/urandom', (p: string) => symlinkSync('/dev/urandom', p)],
        ['a FIFO', (p: string) => void spawnSync('mkfifo', [p])],
        ['an ELF binary', (p: string) => symlinkSync(process.execPath, p)],
        ['mode 000', (p: string) => (writeFileSync(p, '192.0.2.1\n'), chmodSync(p, 0))],
        ['binary junk', (p: string) => writeFileSync(p, Buffer.from(Array.from({ length: 2048 }, (_, k) => (k * 31) & 255)))],
        ['terminal escapes', (p: string) => writeFileSync(p, '192.0.2.1\n\x1b]0;owned\x07\x1b[2J\n')],
      ] as const
    ).map(([name, make]): Case => ({
      name,
      policy: `version: 1\ndefault: reject\nsets:\n  s: { file: set.txt }\nallow:\n  - { name: s, reason: r, to: [$s], ports: [tcp/443] }\n`,
      files: { 'set.txt': make },
      ...(name === 'mode 000' ? {} : { want: 'refused' as const }),
    })),
  ],
  'policy paths': [
    { name: '/dev/zero', policy: () => '/dev/zero', want: 'refused' },
    { name: '/dev/urandom', policy: () => '/dev/urandom', want: 'refused' },
    { name: 'a FIFO', policy: (d) => (spawnSync('mkfifo', [join(d, 'p.fifo')]), 'p.fifo'), want: 'refused' },
    { name: 'a directory', policy: (d) => (mkdirSync(join(d, 'p.d')), 'p.d'), want: 'refused' },
    { name: 'missing', policy: () => 'missing.yaml', want: 'refused' },
    { name: 'a link loop', policy: (d) => (symlinkSync(join(d, 'loop.yaml'), join(d, 'loop.yaml')), 'loop.yaml'), want: 'refused' },
    { name: '/proc/self/environ', policy: () => '/proc/self/environ', want: 'refused' },
    { name: 'a name with a terminal escape', policy: (d) => (writeFileSync(join(d, 'p\x1b[2J.yaml'), OK), 'p\x1b[2J.yaml') },
  ],
};

