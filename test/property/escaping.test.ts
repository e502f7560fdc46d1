/**
 * Escaping (STYLE "Escaping", property 5): arbitrary `reason` text — quotes,
 * backslashes, line breaks, unicode, `;`, `#`, `}`, lone surrogates,
 * fragments of nft and iptables-restore syntax — goes through the nft and
 * iptables backends, and
 *   - nothing is injected: the output with every comment taken out is
 *     byte-for-byte the output for a plain reason;
 *   - the loaders accept it: `nft -f` and `iptables-restore`/`ip6tables-restore`
 *     load it in a throwaway network namespace (after --test for iptables);
 *   - the comment is intact: what the kernel hands back is exactly the
 *     documented safe form of "<rule>: <reason>" (quote.ts).
 */
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { emitIptables, splitIptables } from '../../src/backends/iptables/emit.js';
import { iptCommentText } from '../../src/backends/iptables/quote.js';
import { emitNft } from '../../src/backends/nft/emit.js';
import { nftCommentText } from '../../src/backends/nft/quote.js';
import type { Ir } from '../../src/ir/types.js';
import { loadText } from '../helpers.js';
import { examples, type Example } from './gen.js';
import { inNetns, kernelTest } from '../netns.js';

const RUNS = 40;

const POLICY = `version: 1
allow:
  - { name: web, reason: x, to: [192.0.2.1, "2001:db8::1"], ports: [tcp/443] }
  - { name: dns, reason: x, ports: [udp/53] }
deny:
  - { name: smtp, reason: x, ports: [tcp/25], except: [{ user: postfix }] }
  - { name: meta, reason: x, to: [169.254.169.254] }
`;
const NAMES = ['web', 'dns', 'smtp', 'meta'] as const;

const hostile = fc
  .array(
    fc.constantFrom('"', '\\', '\\"', '\n', '\r\n', '\t', '\0', ';', '#', '{', '}', '$x', '@s', '*', "'", '`', '-j DROP', ' -t nat', 'COMMIT', '*filter', '" accept comment "', '}\ntable inet x {', '\u202e', '\u200b', '\ud800', 'é', '漢字', '🎉', ' '),
    { maxLength: 30 },
  )
  .map((xs) => xs.join(''));
const reason = fc.oneof(hostile, fc.string({ unit: 'binary', maxLength: 160 }), fc.string({ unit: 'grapheme', maxLength: 300 }));
const reasons = fc.tuple(reason, reason, reason, reason);

/**
 * Shrunk counterexamples (see gen.ts `Example`): the reasons of web, dns,
 * smtp and meta. Every property here runs all of them first.
 */
const REASONS: Example<[[string, string, string, string]]>[] = [
  // Caught by "nothing is injected": nftCommentText keeping a `"`, which ends nft's quoted string.
  { name: 'a double quote', args: [['', '', '"', '']] },
  // Caught by "nothing is injected": iptComment escaping `"` but not `\`, so a trailing `\` escaped the closing quote.
  { name: 'a trailing backslash', args: [['\\', '', '', '']] },
  // Caught by "nft loads it" and by "iptables-restore … load it": nftCommentText, and
  // separately iptCommentText, passing control characters through; the loader refused the text.
  { name: 'a NUL', args: [['', '', '\0', '']] },
  // Caught by "nft loads it": nftCommentText writing a lone surrogate, which UTF-8 turns into U+FFFD, so the kernel's comment differed.
  { name: 'a lone surrogate', args: [['', '', '', '\ud800']] },
  // Exercises: rule syntax after a line break, a quote that tries to close the comment and open another,
  // a table opened after a brace, and multi-byte text cut on a character boundary at 128 (nft) and 255 (iptables) bytes.
  { name: 'injection attempts and a long CJK reason', args: [['x\n-A OUTPUT -j DROP', '" accept comment "', '}\ntable inet x {\n', '漢'.repeat(100)]] },
];

async function irWith(rs: readonly string[]): Promise<Ir> {
  const l = await loadText(POLICY);
  expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const ir = structuredClone(l.ir!);
  for (const r of ir.rules) r.reason = rs[NAMES.indexOf(r.origin.name as (typeof NAMES)[number])]!;
  return ir;
}

const stripNft = (t: string) => t.replace(/comment "[^"]*"/g, 'comment ""');
const stripIpt = (t: string) => t.replace(/--comment "(?:[^"\\]|\\.)*"/g, '--comment ""');

/** iptables-restore's word splitter, to read comments back from iptables-save. */
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let open = false;
  let esc = false;
  let started = false;
  for (const ch of line) {
    if (open) {
      if (esc) (cur += ch), (esc = false);
      else if (ch === '\\') esc = true;
      else if (ch === '"') open = false;
      else cur += ch;
    } else if (ch === '"') (open = true), (started = true);
    else if (ch === ' ') {
      if (cur || started) out.push(cur);
      cur = '';
      started = false;
    } else cur += ch;
  }
  if (cur || started) out.push(cur);
  return out;
}

const sorted = (xs: string[]) => [...xs].sort();
/** What a rule's comment says before quoting: an empty reason is no reason. */
const label = (name: string, reason: string) => (reason ? `${name}: ${reason}` : name);

describe('escaping: arbitrary reasons through the Linux backends', () => {
  test('nothing is injected: only comment text changes', async () => {
    const plainNft = stripNft(emitNft(await irWith(['x', 'x', 'x', 'x'])).value!.text);
    const plainIpt = stripIpt(emitIptables(await irWith(['x', 'x', 'x', 'x'])).value!.text);
    await fc.assert(
      fc.asyncProperty(reasons, async (rs) => {
        const ir = await irWith(rs);
        const nft = emitNft(ir).value!.text;
        const ipt = emitIptables(ir).value!.text;
        expect(stripNft(nft)).toBe(plainNft);
        expect(stripIpt(ipt)).toBe(plainIpt);
        for (const [i, n] of NAMES.entries()) {
          expect(nft).toContain(`comment "${nftCommentText(label(n, rs[i]!))}"`);
          expect(ipt).toContain(`--comment "${iptCommentText(label(n, rs[i]!)).replace(/["\\]/g, (c) => '\\' + c)}"`);
        }
      }),
      { numRuns: 200, examples: examples(REASONS) },
    );
  });

  kernelTest('nft loads it and lists the comments back exactly', async () => {
    await fc.assert(
      fc.asyncProperty(reasons, async (rs) => {
        const text = emitNft(await irWith(rs)).value!.text;
        const r = inNetns('nft -c -f ruleset.nft; nft -f ruleset.nft; nft -j list table inet egress', { 'ruleset.nft': text });
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        const listed = (JSON.parse(r.stdout) as { nftables: { rule?: { comment?: string } }[] }).nftables.flatMap((o) => (o.rule ? [o.rule.comment ?? ''] : []));
        const written = [...text.matchAll(/^\t\t.* comment "([^"]*)"$/gm)].map((m) => m[1]!);
        expect(sorted(listed)).toEqual(sorted(written));
        for (const [i, n] of NAMES.entries()) expect(listed).toContain(nftCommentText(label(n, rs[i]!)));
      }),
      { numRuns: RUNS, examples: examples(REASONS) },
    );
  });

  kernelTest('iptables-restore and ip6tables-restore load it and save the comments back exactly', async () => {
    await fc.assert(
      fc.asyncProperty(reasons, async (rs) => {
        const text = emitIptables(await irWith(rs)).value!.text;
        const { ipv4, ipv6 } = splitIptables(text);
        const r = inNetns(
          [
            'iptables-restore --test --noflush < v4',
            'ip6tables-restore --test --noflush < v6',
            'iptables-restore --noflush < v4',
            'ip6tables-restore --noflush < v6',
            'iptables-save -t filter > s4',
            'ip6tables-save -t filter > s6',
            'cat s4; echo "=== v6"; cat s6',
          ].join('\n'),
          { v4: ipv4, v6: ipv6 },
        );
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        const [save4, save6] = r.stdout.split('=== v6\n') as [string, string];
        for (const [emitted, saved] of [
          [ipv4, save4],
          [ipv6, save6],
        ] as const) {
          const rulesOf = (t: string) => t.split('\n').filter((l) => /^-[AI] /.test(l));
          expect(rulesOf(saved).length).toBe(rulesOf(emitted).length);
          const comments = (t: string) => rulesOf(t).flatMap((l) => {
            const w = words(l);
            const k = w.indexOf('--comment');
            return k >= 0 ? [w[k + 1]!] : [];
          });
          expect(sorted(comments(saved))).toEqual(sorted(comments(emitted)));
          for (const [i, n] of NAMES.entries()) if (emitted.includes(`EGRESS-${n} `)) expect(comments(saved)).toContain(iptCommentText(label(n, rs[i]!)));
        }
      }),
      { numRuns: RUNS, examples: examples(REASONS) },
    );
  });
});

kernelTest('the namespace tools are there', () => {
  expect(spawnSync('unshare', ['-n', 'nft', '--version'], { encoding: 'utf8' }).stdout).toMatch(/^nftables v/);
});
