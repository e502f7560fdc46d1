/**
 * The wince-c output compiles as C11 against a header of the documented
 * FW_RULE types (test/fixtures/wince; no Windows SDK here), and the rules the
 * program hands to FirewallCreateRule are exactly the FW_RULE list the .reg
 * is written from: the harness prints each call, we print the list the same
 * way, and the two must match line for line.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadText } from '../../../test/helpers.js';
import { addressBytes, AF, fwFlags, fwMask, FWM, maskBytes, type FwAddress, type FwRule } from './fw-rule.js';
import { emitFwRules } from './fw-rules.js';
import { cWide, winceCBackend } from './emit-c.js';
import { ROOT } from '../../../test/paths.js';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'wince');
const dir = mkdtempSync(join(tmpdir(), 'egress-wince-c-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hexs = (bs: number[]) => bs.map((b) => b.toString(16).toUpperCase().padStart(2, '0')).join('');
const addr = (name: string, a: FwAddress) => ` ${name}=${AF[a.family]}/${hexs(addressBytes(a))}`;

/** The line harness.c prints for a rule. */
function expectedLine(r: FwRule): string {
  const mask = fwMask(r);
  let s = `size=ok flags=${fwFlags(r).toString(16).toUpperCase()} mask=${mask.toString(16).toUpperCase()} persist=1`;
  s += addr('private', r.privateHost);
  if (r.publicHost) s += addr('public', { family: r.privateHost.family, value: r.publicHost.value });
  if (mask & FWM.PUBLIC_HOST_MASK) s += ` mask=${hexs(maskBytes(r.publicHost!.prefix))}`;
  if (mask & FWM.PUBLIC_HOST_PREFIX) s += ` prefix=${r.publicHost!.prefix}`;
  if (r.protocol !== undefined) s += ` protocol=${r.protocol}`;
  if (r.ports) s += ` ports=${r.ports[0]}-${r.ports[1]}`;
  if (r.icmpType !== undefined) s += ` type=${r.icmpType}`;
  if (r.kind === 'log') s += ' action=1';
  s += ' description=' + [...Array(r.description.length).keys()].map((i) => r.description.charCodeAt(i).toString(16).toUpperCase().padStart(4, '0')).join('');
  return s;
}

let n = 0;
async function roundTrip(yaml: string, host: string): Promise<{ got: string[]; want: string[] }> {
  const l = await loadText(yaml);
  expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  const res = winceCBackend.emit(l.ir!, { host });
  // A host with one family leaves the other uncovered: a warning, never silence.
  expect(res.diagnostics.map((d) => `${d.severity} ${d.code}`)).toEqual(host.includes(',') ? [] : ['warning family-uncovered']);
  const plan = emitFwRules(l.ir!, { host }, 'wince-c').value!;
  const src = join(dir, `rules${++n}.c`);
  const bin = join(dir, `rules${n}`);
  writeFileSync(src, res.value!.text);
  execFileSync('gcc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic', '-I', FIXTURES, '-o', bin, src, join(FIXTURES, 'harness.c')], { stdio: 'pipe' });
  const got = execFileSync(bin, { encoding: 'utf8' }).trimEnd().split('\n');
  return { got, want: plan.rules.map(expectedLine) };
}

describe('wince-c compiles and builds the same rules as the .reg', () => {
  test.each([
    [
      'the documentation example',
      'version: 1\ndefault: drop\nallow:\n  - name: smtp\n    reason: send mail\n    ports: [tcp/25]\n  - name: pop3\n    reason: fetch mail\n    ports: [tcp/110]\n',
      '192.168.0.101',
    ],
    [
      'both families, subnets, ranges, ICMP, a deny cut out of an allow, odd descriptions',
      `version: 1
default: reject
allow:
  - name: web
    reason: "web ??/ trigraph, \\"quotes\\", back\\\\slash, caf\\u00e9, it\\u2019s, \\U0001F600"
    to: [198.51.100.0/24, 203.0.113.10-203.0.113.20, "2001:db8:1::/48"]
    ports: [tcp/80, tcp/8000-8099, udp/443, sctp]
  - name: ping
    icmp: [echo-request, packet-too-big]
deny:
  - name: bad
    reason: one bad web host
    to: [198.51.100.66, "2001:db8:1::66"]
`,
      '192.0.2.101,2001:db8::101',
    ],
  ])('%s', async (_name, yaml, host) => {
    const { got, want } = await roundTrip(yaml, host);
    expect(got).toEqual(want);
    expect(got.length).toBeGreaterThan(2);
  });
});

describe('every wince.c golden compiles and runs', () => {
  const goldens = join(FIXTURES, '..', '..', 'golden');
  const files = readdirSync(goldens, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('wince.c'));
  test('there is at least one', () => expect(files.length).toBeGreaterThan(0));
  test.each(files)('%s', (f) => {
    const bin = join(dir, `golden${++n}`);
    execFileSync('gcc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic', '-I', FIXTURES, '-o', bin, join(goldens, f), join(FIXTURES, 'harness.c')], { stdio: 'pipe' });
    expect(execFileSync(bin, { encoding: 'utf8' })).toMatch(/^size=ok flags=12 mask=25 persist=1 private=2\/C0A80065 protocol=6 ports=110-110 /);
  });
});

describe('cWide', () => {
  test.each([
    ['plain', 'L"plain"'],
    ['a"b\\c', 'L"a\\"b\\\\c"'],
    ['??/', 'L"\\?\\?/"'],
    ['it\u2019s', 'L"it\\x2019" L"s"'],
    ['caf\u00e9', 'L"caf\\x00E9"'],
    ['\u00e9a', 'L"\\x00E9" L"a"'],
    ['\u{1F600}', 'L"\\xD83D" L"\\xDE00"'],
    ['a\nb', 'L"a\\x000A" L"b"'],
    ['', 'L""'],
  ])('%j → %s', (input, want) => {
    expect(cWide(input)).toBe(want);
  });
});
