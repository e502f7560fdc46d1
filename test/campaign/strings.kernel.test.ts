/**
 * Campaign class "hostile strings": quotes, backslashes, line breaks, `;`,
 * `$()`, backticks, `#`, unicode, NUL, lone surrogates and very long text in
 * every field a policy hands to a ruleset — rule names, reasons, owner and
 * ticket, the log prefix, set names, `{file:}` set lines, hostnames, users,
 * interfaces — through every target.
 *
 * Each trial is one policy with one field replaced. `check` must either
 * accept it or give located errors (exit 1), with no control or bidi
 * character echoed raw. An accepted policy is compiled for every target; a
 * target may refuse it only with a located error. What each target writes
 * must have the same shape as the plain policy's, judged by that target's
 * own reader:
 *   - nft: `nft -f` loads it in a throwaway namespace, and the kernel lists
 *     the same number of tables, chains, rules, sets, set elements and
 *     counters as for the plain policy, in table `inet egress` only;
 *   - iptables: iptables-restore and ip6tables-restore load it, and
 *     *-save lists the same chains and the same number of rules;
 *   - windows: printable ASCII, and with every quoted literal (parsed by the
 *     PowerShell model, ps-eval.ts) replaced by a placeholder, the script is
 *     the plain policy's script;
 *   - wince (.reg): with its strings and comments taken out, the file is the
 *     plain policy's file;
 *   - wince-c: gcc builds it with -Werror against the FW_RULE header, and the
 *     descriptions the program hands over are the .reg's, in the same order.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect } from 'vitest';
import { splitIptables } from '../../src/backends/iptables/emit.js';
import { fixedResolver, tempDir } from '../helpers.js';
import { run } from '../cli/run.js';
import { inNetns, kernelTest } from '../netns.js';
import { evalPs } from '../property/ps-eval.js';
import { attack, expectNoCrash, sample } from './tally.js';
import { ROOT } from '../paths.js';

const CLASS = 'hostile strings';
const HOST = '192.0.2.10,2001:db8::10';
const FIXTURES = join(ROOT, 'test', 'fixtures', 'wince');

/** The strings the attack of the design notes used, and more: each one a known way to break out of some quoting. */
export const HOSTILE: readonly string[] = [
  '"', "'", '\\', '\\"', '"\\', 'a\\', '\n', '\r\n', '\r', '\u0085', '\u2028', '\t', '\0', 'a\0b', '\x1b[31mred\x1b[0m', '\x7f', '\x08',
  ';', '; rm -rf /', '$(id)', '${HOME}', '`id`', '#', '# comment', '}', '{', '}\ntable inet x {', '" accept comment "', '"; accept; "',
  '\n-A OUTPUT -j ACCEPT', ' -j ACCEPT', 'COMMIT\n*filter', '*/', '/*', '??/', '@"\n"@', "' + $x + '", '\u2019', '\u201b', '[HKEY_LOCAL_MACHINE\\x]', '"=dword:1',
  '\u202e', '\u200b', '\ufeff', '\uffff', 'e\u0301', '🎉', '漢字', '\ud800', '\udc00x', 'x'.repeat(1000), 'y'.repeat(100_000), '',
  // Plain values of another length: valid in most fields, so they reach every target.
  'b', 'x-1_y', 'a'.repeat(32),
];

/** Generated: hostile pieces run together, and arbitrary UTF-16. */
const generated = fc.oneof(
  fc.array(fc.constantFrom(...HOSTILE.filter((s) => s.length < 100), 'a', '0', '-', '.', ' ', '*'), { minLength: 1, maxLength: 12 }).map((xs) => xs.join('')),
  fc.string({ unit: 'binary', maxLength: 40 }),
);

interface Field {
  name: string;
  /** A plain value for this field: what every trial's output is compared with. */
  plain: string;
  /** The policy object and set file with `s` put into this field. */
  put(s: string): { policy: Record<string, unknown>; setFile: string };
}

function base(): { policy: Record<string, unknown>; setFile: string } {
  return {
    policy: {
      version: 1,
      default: 'reject',
      log: { prefix: 'EGRESS ' },
      sets: { myset: ['192.0.2.7', '2001:db8::7'], fromfile: { file: 'set.txt' } },
      allow: [{ name: 'web', reason: 'plain', owner: 'ops', ticket: 'T-1', to: ['$myset', '$fromfile', 'host.example'], ports: ['tcp/443'] }],
      deny: [{ name: 'meta', reason: 'plain', to: ['192.0.2.169'] }],
    },
    setFile: '192.0.2.9\n2001:db8::9\n',
  };
}

type Rule = Record<string, unknown>;
const web = (p: Record<string, unknown>) => (p.allow as Rule[])[0]!;
const FIELDS: Field[] = [
  { name: 'reason', plain: 'plain', put: (s) => withPolicy((p) => (web(p).reason = s)) },
  { name: 'owner', plain: 'ops', put: (s) => withPolicy((p) => (web(p).owner = s)) },
  { name: 'ticket', plain: 'T-1', put: (s) => withPolicy((p) => (web(p).ticket = s)) },
  { name: 'rule name', plain: 'web', put: (s) => withPolicy((p) => (web(p).name = s)) },
  {
    name: 'set name',
    plain: 'myset',
    put: (s) =>
      withPolicy((p) => {
        p.sets = { [s]: ['192.0.2.7', '2001:db8::7'], fromfile: { file: 'set.txt' } };
        web(p).to = [`$${s}`, '$fromfile', 'host.example'];
      }),
  },
  { name: 'log prefix', plain: 'EGRESS ', put: (s) => withPolicy((p) => (p.log = { prefix: s })) },
  { name: 'set-file line', plain: '# a comment', put: (s) => ({ ...base(), setFile: `192.0.2.9\n${s}\n2001:db8::9\n` }) },
  // Its plain value does not resolve, as no hostile name does: a name that never resolved is left out of the windows script.
  { name: 'hostname', plain: 'unresolved.example', put: (s) => withPolicy((p) => (web(p).to = ['$myset', '$fromfile', s])) },
  { name: 'user', plain: 'www-data', put: (s) => withPolicy((p) => (web(p).user = s)) },
  { name: 'via', plain: 'eth0', put: (s) => withPolicy((p) => (web(p).via = s)) },
];

function withPolicy(edit: (p: Record<string, unknown>) => void): { policy: Record<string, unknown>; setFile: string } {
  const b = base();
  edit(b.policy);
  return b;
}

const resolver = fixedResolver({ 'host.example': { ipv4: ['198.51.100.80'], ipv6: ['2001:db8:80::1'] } });
const show = (s: string) => (s.length > 40 ? `${JSON.stringify(s.slice(0, 40))}… (${s.length} chars)` : JSON.stringify(s));

/** Control characters (other than a line break) and bidi overrides: never echoed raw to a terminal. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;
const LOCATED = /^(?:\S+):\d+:\d+: error: /m;

/** The checks that need no kernel; returns what the kernel and gcc are to check. */
interface Compiled {
  label: string;
  nft?: string;
  ipt?: { ipv4: string; ipv6: string };
  /** The PowerShell script's shape (psShape). */
  ps?: string;
  reg?: string;
  c?: string;
}

async function compileAll(dir: string, i: number, input: { policy: Record<string, unknown>; setFile: string }, label: string): Promise<Compiled> {
  const d = join(dir, String(i));
  execFileSync('mkdir', ['-p', d]);
  writeFileSync(join(d, 'policy.yaml'), JSON.stringify(input.policy, null, 1));
  writeFileSync(join(d, 'set.txt'), input.setFile);
  const check = await run(['check', 'policy.yaml'], { cwd: d, resolver });
  const said = check.stdout + check.stderr;
  expectNoCrash(said);
  if (RAW_CONTROL.test(said)) throw new Error(`check echoed a raw control character: ${JSON.stringify(said.slice(0, 300))}`);
  if (check.code === 1) {
    if (!LOCATED.test(said)) throw new Error(`check refused it without a located error:\n${said.slice(0, 400)}`);
    return { label };
  }
  if (check.code !== 0) throw new Error(`check exited ${check.code}:\n${said.slice(0, 400)}`);
  const out: Compiled = { label };
  for (const target of ['nft', 'iptables', 'windows', 'wince', 'wince-c'] as const) {
    const r = await run(['compile', 'policy.yaml', '--target', target, ...(target.startsWith('wince') ? ['--host', HOST] : [])], { cwd: d, resolver });
    expectNoCrash(r.stdout + r.stderr);
    if (r.code === 1) {
      if (!LOCATED.test(r.stderr)) throw new Error(`${target} refused it without a located error:\n${r.stderr.slice(0, 400)}`);
      continue;
    }
    if (r.code !== 0) throw new Error(`compile --target ${target} exited ${r.code}:\n${r.stderr.slice(0, 400)}`);
    const text = r.stdout;
    if (target === 'nft') out.nft = text;
    else if (target === 'iptables') out.ipt = splitIptables(text);
    else if (target === 'windows') {
      if (!/^[\x20-\x7e\n]*$/.test(text)) throw new Error('the PowerShell script is not printable ASCII');
      out.ps = psShape(text);
    } else if (target === 'wince') out.reg = text;
    else out.c = text;
  }
  return out;
}

/** A PowerShell literal as psString writes it: '…' (quotes doubled) or ('…' + [char]0xHHHH + …). */
const PS_LITERAL = /\((?:'(?:[^']|'')*'|\[char\]0x[0-9A-F]{4})(?: \+ (?:'(?:[^']|'')*'|\[char\]0x[0-9A-F]{4}))*\)|'(?:[^']|'')*'/g;
function psShape(text: string): string {
  return text
    .replace(PS_LITERAL, (m) => {
      evalPs(m); // throws on anything outside psString's grammar
      return "'S'";
    })
    .replace(/#.*$/gm, '#'); // comments name rules; text that broke out of one would leave a line that is not
}

/** A .reg with every "string" replaced and every ; comment dropped: what remains is keys, value names and numbers. */
function regShape(text: string): string {
  return text
    .replace(/"(?:[^"\\\n]|\\.)*"/g, '"S"')
    .replace(/;.*$/gm, '')
    .replace(/^\[HKEY_LOCAL_MACHINE\\COMM\\Firewall\\Rules\\egress[^\]\n]*\]$/gm, '[KEY]')
    .replace(/[ \t]+$/gm, '');
}

/** The .reg's Description values, unescaped (\\ and \"). */
const regDescriptions = (text: string) => [...text.matchAll(/^ *"Description"="((?:[^"\\\n]|\\.)*)"/gm)].map((m) => m[1]!.replace(/\\(.)/g, '$1'));

function firstDiff(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  const k = x.findIndex((l, i) => l !== y[i]);
  return `line ${k + 1}: ${JSON.stringify(x[k]?.slice(0, 200))} ≠ ${JSON.stringify(y[k]?.slice(0, 200))}`;
}

type Counts = Record<string, number>;

/** Load every nft ruleset in one namespace, one after another, and count what the kernel lists for each. */
function nftCounts(texts: string[]): (Counts | string)[] {
  if (!texts.length) return [];
  const files = Object.fromEntries(texts.map((t, i) => [`r${i}.nft`, t]));
  // One base64 line per ruleset: a listing holds whatever the comments hold.
  const script = texts.map((_, i) => `if nft -f r${i}.nft 2>e${i}; then nft -j list ruleset | base64 -w0; else printf 'FAILED ' | cat - e${i} | base64 -w0; fi; echo; nft flush ruleset`).join('\n');
  const r = inNetns(script, files);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.trimEnd().split('\n').map((line) => {
    const json = Buffer.from(line, 'base64').toString('utf8');
    if (json.startsWith('FAILED')) return `nft -f refused it: ${json.slice(7, 300)}`;
    const objs = (JSON.parse(json) as { nftables: Record<string, { family?: string; name?: string; table?: string; elem?: unknown[] }>[] }).nftables;
    const c: Counts = {};
    for (const o of objs) {
      const [kind, v] = Object.entries(o)[0]!;
      if (kind === 'metainfo') continue;
      c[kind] = (c[kind] ?? 0) + 1;
      if (kind === 'set') c.elements = (c.elements ?? 0) + (v.elem?.length ?? 0);
      if (kind === 'table' && !(v.family === 'inet' && v.name === 'egress')) c[`foreign table ${v.family} ${v.name}`] = 1;
    }
    return c;
  });
}

/** Load every iptables ruleset (both families) in one namespace; for each, its saved chains and rule count. */
function iptShapes(rulesets: { ipv4: string; ipv6: string }[]): string[] {
  if (!rulesets.length) return [];
  const files: Record<string, string> = {};
  rulesets.forEach((r, i) => ((files[`v4.${i}`] = r.ipv4), (files[`v6.${i}`] = r.ipv6)));
  const script = rulesets
    .map((_, i) => `if iptables-restore < v4.${i} 2>&1 && ip6tables-restore < v6.${i} 2>&1; then iptables-save; echo "--- v6"; ip6tables-save; else echo FAILED; fi | base64 -w0; echo`)
    .join('\n');
  const r = inNetns(script, files);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout
    .trimEnd()
    .split('\n')
    .map((line) => {
      const saved = Buffer.from(line, 'base64').toString('utf8');
      if (/^FAILED$/m.test(saved)) return `iptables-restore refused it: ${saved.slice(0, 300)}`;
      const chains = saved.split('\n').filter((l) => l.startsWith(':') || l.startsWith('*') || l.startsWith('---')).map((l) => l.replace(/ \[\d+:\d+\]$/, ''));
      const rules = saved.split('\n').filter((l) => l.startsWith('-A ')).length;
      return `${chains.join(' ')} | ${rules} rules`;
    });
}

/** Whether an account of this name exists on this machine (the kernel loaders resolve names against it). */
function knownUser(label: string): boolean {
  const name = JSON.parse(label) as string;
  return readFileSync('/etc/passwd', 'utf8').split('\n').some((l) => l.split(':')[0] === name);
}

/** Build each wince-c program and return the descriptions it hands to FirewallCreateRule, in order. */
function cDescriptions(dir: string, src: string, i: number): string[] {
  const c = join(dir, `w${i}.c`);
  const bin = join(dir, `w${i}`);
  writeFileSync(c, src);
  execFileSync('gcc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic', '-I', FIXTURES, '-o', bin, c, join(FIXTURES, 'harness.c')], { stdio: 'pipe' });
  return execFileSync(bin, { encoding: 'utf8' })
    .trimEnd()
    .split('\n')
    .map((l) => {
      const hex = / description=([0-9A-F]*)$/.exec(l)?.[1] ?? '';
      return String.fromCharCode(...(hex.match(/.{4}/g) ?? []).map((h) => parseInt(h, 16)));
    });
}

describe('campaign: hostile strings into every target', () => {
  const dir = tempDir('egress-campaign-strings-');

  kernelTest.each(FIELDS.map((f, k) => [f.name, f, k] as const))('%s', async (_n, field, k) => {
    const at = (i: number) => 1000 * (k + 1) + i;
    // The field's plain value first: every shape is compared with its output.
    const plain = await compileAll(dir, at(0), field.put(field.plain), 'plain');
    expect(plain.nft && plain.ipt, `the plain ${field.name} compiles for nft and iptables`).toBeTruthy();
    const inputs = [...HOSTILE, ...sample(generated, 25, k)];
    const compiled: Compiled[] = [];
    await attack(CLASS, `${field.name}: check and compile`, inputs, (s) => show(s), async (s, i) => {
      const c = await compileAll(dir, at(i + 1), field.put(s), show(s));
      if (c.ps) expect(c.ps === plain.ps, `the PowerShell script's shape differs from the plain policy's: ${firstDiff(c.ps, plain.ps!)}`).toBe(true);
      if (c.reg && plain.reg) expect(regShape(c.reg) === regShape(plain.reg), `the .reg's shape differs: ${firstDiff(regShape(c.reg), regShape(plain.reg))}`).toBe(true);
      compiled.push(c);
    });
    // One namespace run per backend for the plain policy and every accepted trial.
    const loaded = [plain, ...compiled.filter((c) => c.nft || c.ipt)];
    const nft = nftCounts(loaded.map((c) => c.nft ?? ''));
    const ipt = iptShapes(loaded.map((c) => c.ipt ?? { ipv4: '', ipv6: '' }));
    expect(typeof nft[0], String(nft[0])).toBe('object');
    await attack(CLASS, `${field.name}: loaded by nft and iptables`, loaded.slice(1), (c) => c.label, (c, i) => {
      if (c.nft) {
        const got = nft[i + 1]!;
        // A user name check accepts (with a warning) but that this machine lacks: the loader must refuse it, and it does.
        if (typeof got === 'string' && field.name === 'user' && /Error: User does not exist/.test(got) && !knownUser(c.label)) return;
        if (typeof got === 'string') throw new Error(got);
        expect(got, 'what the kernel lists for nft').toEqual(nft[0]);
      }
      if (c.ipt) expect(ipt[i + 1], 'what iptables-save lists').toBe(ipt[0]);
    });
    // gcc for every distinct wince-c program that differs from the plain one (the field reached it).
    const built = compiled.filter((c, i, all) => c.c && c.reg && c.c !== plain.c && all.findIndex((o) => o.c === c.c) === i);
    await attack(CLASS, `${field.name}: wince-c built by gcc`, built, (c) => c.label, (c, i) => {
      expect(cDescriptions(dir, c.c!, at(i))).toEqual(regDescriptions(c.reg!));
    });
  }, 300_000);
});
