/**
 * Every error and lint of the policy language: code, severity and 1-based
 * line/col of the offending value. Policies are written inline; the first
 * line of each is line 1.
 */
import { describe, expect, test } from 'vitest';
import { locate } from '../diag/render.js';
import { printIr } from '../ir/print.js';
import { loadText } from '../../test/helpers.js';

async function diags(text: string, files?: Record<string, string>) {
  const l = await loadText(text, files ? { files } : { hosts: { 'mirror.example.org': { ipv4: ['203.0.113.80'] } } });
  return l.diagnostics.map((d) => {
    const loc = d.span ? locate(l.sources, d.span) : undefined;
    return { code: d.code, severity: d.severity, at: loc ? `${loc.file}:${loc.line}:${loc.col}` : undefined, hint: d.hint };
  });
}

const ok = (body: string) => `version: 1\n${body}`;

describe('errors', () => {
  test.each([
    ['empty file', '', 'empty-file', 'policy.yaml:1:1'],
    ['comments only', '# nothing\n\n', 'empty-file', 'policy.yaml:1:1'],
    ['binary garbage', 'version: 1\n\x00\x01\x02\xff', 'binary-file', 'policy.yaml:1:1'],
    ['yaml syntax', 'version: 1\nallow: [\n', 'yaml-syntax', 'policy.yaml:3:1'],
    ['duplicate yaml key', 'version: 1\nversion: 1\n', 'yaml-syntax', 'policy.yaml:2:1'],
    ['not a mapping', '- a\n- b\n', 'bad-type', 'policy.yaml:1:1'],
    ['missing version', 'allow: []\n', 'missing-key', 'policy.yaml:1:1'],
    ['bad version', 'version: 2\n', 'bad-version', 'policy.yaml:1:10'],
    ['unknown top key', ok('alow: []\n'), 'unknown-key', 'policy.yaml:2:1'],
    ['unknown rule key', ok('allow:\n  - name: dns\n    prots: [udp/53]\n'), 'unknown-key', 'policy.yaml:4:5'],
    ['bad mode', ok('mode: enforced\n'), 'bad-value', 'policy.yaml:2:7'],
    ['bad default', ok('default: deny\n'), 'bad-value', 'policy.yaml:2:10'],
    ['wrong type: ports a mapping', ok('allow:\n  - name: a\n    ports: {tcp: 80}\n'), 'bad-type', 'policy.yaml:4:12'],
    ['wrong type: port a number', ok('allow:\n  - name: a\n    ports: [53]\n'), 'bad-type', 'policy.yaml:4:13'],
    ['wrong type: allow a mapping', ok('allow: {name: a}\n'), 'bad-type', 'policy.yaml:2:8'],
    ['wrong type: builtin not bool', ok('builtins:\n  loopback: yes please\n'), 'bad-type', 'policy.yaml:3:13'],
    ['missing rule name', ok('allow:\n  - ports: [tcp/80]\n'), 'missing-key', 'policy.yaml:3:5'],
    ['bad rule name', ok('allow:\n  - name: "x; flush ruleset"\n'), 'bad-rule-name', 'policy.yaml:3:11'],
    ['uppercase rule name', ok('allow:\n  - name: DNS\n'), 'bad-rule-name', 'policy.yaml:3:11'],
    ['rule name too long', ok(`allow:\n  - name: ${'a'.repeat(33)}\n`), 'bad-rule-name', 'policy.yaml:3:11'],
    ['duplicate rule name', ok('allow:\n  - name: a\ndeny:\n  - name: a\n'), 'duplicate-rule-name', 'policy.yaml:5:11'],
    ['port out of range', ok('allow:\n  - name: a\n    ports: [tcp/65536]\n'), 'bad-port', 'policy.yaml:4:13'],
    ['port zero', ok('allow:\n  - name: a\n    ports: [tcp/0]\n'), 'bad-port', 'policy.yaml:4:13'],
    ['port range reversed', ok('allow:\n  - name: a\n    ports: [tcp/90-80]\n'), 'bad-port', 'policy.yaml:4:13'],
    ['port without protocol', ok('allow:\n  - name: a\n    ports: ["443"]\n'), 'bad-port', 'policy.yaml:4:13'],
    ['unknown protocol', ok('allow:\n  - name: a\n    ports: [tpc/443]\n'), 'bad-protocol', 'policy.yaml:4:13'],
    ['icmp as port protocol', ok('allow:\n  - name: a\n    ports: [icmp]\n'), 'bad-protocol', 'policy.yaml:4:13'],
    ['unknown icmp type', ok('allow:\n  - name: a\n    icmp: [echo-requets]\n'), 'bad-icmp', 'policy.yaml:4:12'],
    ['bad address', ok('allow:\n  - name: a\n    to: [10.0.0.300]\n'), 'bad-address', 'policy.yaml:4:10'],
    ['bad CIDR prefix', ok('allow:\n  - name: a\n    to: [10.0.0.0/33]\n'), 'bad-address', 'policy.yaml:4:10'],
    ['bad IPv6', ok('allow:\n  - name: a\n    to: ["2001:db8:::1"]\n'), 'bad-address', 'policy.yaml:4:10'],
    ['range reversed', ok('allow:\n  - name: a\n    to: [10.0.0.9-10.0.0.1]\n'), 'bad-address', 'policy.yaml:4:10'],
    ['range mixing families', ok('allow:\n  - name: a\n    to: ["10.0.0.1-2001:db8::1"]\n'), 'bad-address', 'policy.yaml:4:10'],
    ['garbage destination', ok('allow:\n  - name: a\n    to: ["not an address!"]\n'), 'bad-address', 'policy.yaml:4:10'],
    ['undefined set', ok('allow:\n  - name: a\n    to: [$mirors]\n'), 'unknown-set', 'policy.yaml:4:10'],
    ['unused set', ok('sets:\n  spare: [192.0.2.1]\n'), 'unused-set', 'policy.yaml:3:3'],
    ['set cycle', ok('sets:\n  a: [$b]\n  b: [$a]\nallow:\n  - name: x\n    to: [$a]\n'), 'set-cycle', 'policy.yaml:4:7'],
    ['bad set name', ok('sets:\n  Bad: [192.0.2.1]\nallow:\n  - name: x\n    to: [$bad]\n'), 'bad-set-name', 'policy.yaml:3:3'],
    ['except on allow', ok('allow:\n  - name: a\n    except: {user: root}\n'), 'except-on-allow', 'policy.yaml:4:5'],
    ['family conflict', ok('allow:\n  - name: a\n    family: ipv6\n    to: [192.0.2.1]\n'), 'family-conflict', 'policy.yaml:5:10'],
    ['bad family', ok('allow:\n  - name: a\n    family: ip4\n'), 'bad-value', 'policy.yaml:4:13'],
    ['bad user', ok('allow:\n  - name: a\n    user: "bad user"\n'), 'bad-user', 'policy.yaml:4:11'],
    ['bad interface', ok('allow:\n  - name: a\n    via: "this-name-is-far-too-long"\n'), 'bad-interface', 'policy.yaml:4:10'],
    ['bad date', ok('allow:\n  - name: a\n    expires: 2026-02-30\n'), 'bad-date', 'policy.yaml:4:14'],
    ['bad log prefix chars', ok('log:\n  prefix: "EG\\"RESS"\n'), 'bad-log-prefix', 'policy.yaml:3:11'],
    ['log prefix over 29', ok(`log:\n  prefix: "${'A'.repeat(30)}"\n`), 'bad-log-prefix', 'policy.yaml:3:11'],
    ['bad log rate', ok('log:\n  rate: fast\n'), 'bad-log-rate', 'policy.yaml:3:9'],
    ['unreadable set file', ok('sets:\n  cloud: { file: nope.txt }\nallow:\n  - name: a\n    to: [$cloud]\n'), 'unreadable-file', 'policy.yaml:3:18'],
  ])('%s', async (_name, text, code, at) => {
    const ds = await diags(text);
    expect(ds).toContainEqual(expect.objectContaining({ code, severity: 'error', at }));
  });

  test('bad line in a set file points into that file', async () => {
    const ds = await diags(ok('sets:\n  cloud: { file: ranges.txt }\nallow:\n  - name: a\n    to: [$cloud]\n'), {
      'ranges.txt': '# cloud\n192.0.2.0/24\n  nonsense.example # a name\n',
    });
    expect(ds).toContainEqual(expect.objectContaining({ code: 'bad-address', at: 'ranges.txt:3:3' }));
  });

  test('all errors of a file are reported in one run', async () => {
    const ds = await diags(ok('allow:\n  - name: a\n    ports: [tcp/99999]\n    to: [300.1.1.1]\n  - name: a\n    icmp: [pingg]\n'));
    expect(ds.filter((d) => d.severity === 'error').map((d) => d.code)).toEqual(
      expect.arrayContaining(['bad-port', 'bad-address', 'duplicate-rule-name', 'bad-icmp']),
    );
  });

  test.each([
    ['prots', 'did you mean "ports"?'],
    ['too', 'did you mean "to"?'],
    ['usr', 'did you mean "user"?'],
    ['reasn', 'did you mean "reason"?'],
  ])('unknown key %s hints %s', async (key, hint) => {
    const ds = await diags(ok(`allow:\n  - name: a\n    ${key}: x\n`));
    expect(ds).toContainEqual(expect.objectContaining({ code: 'unknown-key', hint }));
  });

  test('unknown set hints the closest set', async () => {
    const ds = await diags(ok('sets:\n  mirrors: [192.0.2.1]\nallow:\n  - name: a\n    to: [$mirors, $mirrors]\n'));
    expect(ds).toContainEqual(expect.objectContaining({ code: 'unknown-set', hint: 'did you mean "$mirrors"?' }));
  });
});

describe('warnings (exit 0)', () => {
  test.each([
    ['host bits set', ok('allow:\n  - name: a\n    reason: r\n    to: [10.0.0.1/24]\n'), 'host-bits-set', 'policy.yaml:5:10', 'did you mean 10.0.0.0/24?'],
    ['missing reason', ok('allow:\n  - name: a\n    to: [192.0.2.1]\n'), 'missing-reason', 'policy.yaml:3:11', undefined],
    ['expired rule', ok('allow:\n  - name: a\n    reason: r\n    expires: 2026-01-01\n'), 'expired-rule', 'policy.yaml:5:14', undefined],
    ['soon expiring rule', ok('allow:\n  - name: a\n    reason: r\n    expires: 2026-06-10\n'), 'expiring-rule', 'policy.yaml:5:14', undefined],
    [
      'redundant allow',
      ok('allow:\n  - name: wide\n    reason: r\n    to: [192.0.2.0/24]\n  - name: narrow\n    reason: r\n    to: [192.0.2.5]\n    ports: [tcp/80]\n'),
      'redundant-rule',
      'policy.yaml:6:11',
      undefined,
    ],
    [
      'dead allow',
      ok('deny:\n  - name: block\n    reason: r\n    to: [192.0.2.0/24]\nallow:\n  - name: web\n    reason: r\n    to: [192.0.2.80]\n    ports: [tcp/80]\n'),
      'dead-rule',
      'policy.yaml:7:11',
      undefined,
    ],
    ['dns anywhere', ok('allow:\n  - name: dns\n    reason: r\n    ports: [udp/53]\n'), 'dns-anywhere', 'policy.yaml:3:11', 'restrict "to" to your resolvers'],
    ['established off', ok('builtins:\n  established: false\nallow:\n  - name: a\n    reason: r\n    to: [192.0.2.1]\n'), 'builtin-disabled', 'policy.yaml:3:16', undefined],
    ['icmpv6_nd off', ok('builtins:\n  icmpv6_nd: false\nallow:\n  - name: a\n    reason: r\n    to: [192.0.2.1]\n'), 'builtin-disabled', 'policy.yaml:3:14', undefined],
    ['blocks nothing', ok('default: accept\nallow:\n  - name: a\n    reason: r\n    to: [192.0.2.1]\n'), 'blocks-nothing', 'policy.yaml:2:10', undefined],
    ['long log prefix', ok('log:\n  prefix: "EGRESS-OUTBOUND-DENY "\n'), 'log-prefix-long', 'policy.yaml:3:11', undefined],
    ['empty selector list', ok('allow:\n  - name: a\n    reason: r\n    to: []\n'), 'empty-rule', 'policy.yaml:5:5', undefined],
    ['unknown user', ok('allow:\n  - name: a\n    reason: r\n    user: nosuchuser\n'), 'unknown-user', 'policy.yaml:5:11', undefined],
    ['unresolvable host', ok('allow:\n  - name: a\n    reason: r\n    to: [nowhere.example]\n'), 'unresolved-host', 'policy.yaml:5:10', undefined],
  ])('%s', async (_name, text, code, at, hint) => {
    const ds = await diags(text);
    expect(ds.filter((d) => d.severity === 'error')).toEqual([]);
    expect(ds).toContainEqual(expect.objectContaining({ code, severity: 'warning', at, ...(hint ? { hint } : {}) }));
  });

  test('two identical allows: only the later name is redundant', async () => {
    const ds = await diags(ok('allow:\n  - name: b\n    reason: r\n    to: [192.0.2.1]\n  - name: a\n    reason: r\n    to: [192.0.2.1]\n'));
    expect(ds.filter((d) => d.code === 'redundant-rule').map((d) => d.at)).toEqual(['policy.yaml:3:11']);
  });

  test('a rule that also governs a forward source is not redundant beside a host-only twin; the host-only one is', async () => {
    const fwd = 'forward:\n  sources:\n    docker: { interfaces: [docker0] }\n';
    // Same host traffic; "b" also governs docker. Before, the later name of two identical host twins ("b") was the redundant one.
    const ds = await diags(ok(`${fwd}allow:\n  - { name: a, reason: r, to: [192.0.2.1], ports: [tcp/443] }\n  - { name: b, reason: r, from: [host, docker], to: [192.0.2.1], ports: [tcp/443] }\n`));
    expect(ds.filter((d) => d.code === 'redundant-rule').map((d) => d.at)).toEqual(['policy.yaml:6:13']);
  });

  test('an allow narrower only by user is not redundant the other way round', async () => {
    const ds = await diags(ok('allow:\n  - name: any\n    reason: r\n    ports: [tcp/443]\n    to: [192.0.2.1]\n  - name: app\n    reason: r\n    user: appuser\n    ports: [tcp/443]\n    to: [192.0.2.1]\n'));
    expect(ds.filter((d) => d.code === 'redundant-rule').map((d) => d.at)).toEqual(['policy.yaml:7:11']);
  });

  test('a deny with except does not make an allow dead', async () => {
    const ds = await diags(ok('deny:\n  - name: smtp\n    reason: r\n    ports: [tcp/25]\n    except: {user: postfix}\nallow:\n  - name: mail\n    reason: r\n    user: postfix\n    ports: [tcp/25]\n'));
    expect(ds.map((d) => d.code)).not.toContain('dead-rule');
  });

  test('over SSH, a policy that would cut the session warns (ssh-lockout)', async () => {
    const { loadPolicyText } = await import('../index.js');
    const { fixedResolver, NOW } = await import('../../test/helpers.js');
    const text = ok('builtins:\n  established: false\nallow:\n  - name: a\n    reason: r\n    to: [192.0.2.1]\n');
    const env = { SSH_CONNECTION: '198.51.100.9 50000 192.0.2.5 22' };
    const l = await loadPolicyText('policy.yaml', text, { resolver: fixedResolver(), now: NOW, env });
    expect(l.diagnostics.map((d) => d.code)).toContain('ssh-lockout');
    const off = await loadPolicyText('policy.yaml', text, { resolver: fixedResolver(), now: NOW, env: {} });
    expect(off.diagnostics.map((d) => d.code)).not.toContain('ssh-lockout');
  });

  test('an expired rule is left out of the model', async () => {
    const l = await loadText(ok('allow:\n  - name: old\n    reason: r\n    expires: 2020-01-01\n    to: [192.0.2.1]\n  - name: new\n    reason: r\n    to: [192.0.2.2]\n'));
    expect(l.ir!.rules.map((r) => r.origin.name)).toEqual(['new']);
  });

  test('the starter policy and every example check clean of errors', async () => {
    const { STARTER_POLICY } = await import('./starter.js');
    const l = await loadText(STARTER_POLICY, { hosts: { 'deb.debian.org': { ipv4: ['203.0.113.1'] }, 'security.debian.org': { ipv4: ['203.0.113.2'] } } });
    expect(l.diagnostics).toEqual([]);
  });
});

describe('YAML anchors and aliases', () => {
  test('an alias is the anchored value: a deny rule with `to: *list` denies that list (it used to match nothing)', async () => {
    const l = await loadText(
      ok('deny:\n  - name: d\n    to: &bad [192.0.2.66]\n    reason: r\n  - name: e\n    to: *bad\n    ports: &p [tcp/25]\n    reason: &why "no mail"\nallow:\n  - name: a\n    to: [192.0.2.0/24]\n    ports: *p\n    reason: *why\n'),
    );
    expect(l.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const ir = printIr(l.ir!);
    expect(ir).toMatch(/^rule deny e ipv4 dst \{192\.0\.2\.66\[0\]\} l4 tcp \{25\}$/m);
    expect(ir).toMatch(/^rule allow a ipv4 dst \{192\.0\.2\.0\/24\[0\]\} l4 tcp \{25\}$/m);
  });

  test('one anchor used 150 times is fine (yaml counted alias uses and gave an internal error past 100)', async () => {
    const rules = Array.from({ length: 150 }, (_, i) => `  - name: r${i}\n    to: [192.0.2.${i + 1}]\n    ports: [tcp/443]\n    reason: ${i ? '*why' : '&why "mirrors"'}\n`).join('');
    const l = await loadText(ok(`allow:\n${rules}`));
    expect(l.diagnostics).toEqual([]);
  });

  test('a "billion laughs" expansion is a located error, not memory or an internal error', async () => {
    let text = 'version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i < 10; i++) text += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
    expect(await diags(text)).toEqual([{ code: 'yaml-syntax', severity: 'error', at: 'policy.yaml:8:30', hint: expect.stringMatching(/alias/) }]);
  });
});

describe('text no backend carries the same way (D19)', () => {
  test.each([
    ['a NUL in a reason', 'reason: "a\\0b"', /contains a NUL character/],
    ['an unpaired surrogate in a reason', 'reason: "a\\uD800b"', /contains an unpaired UTF-16 surrogate/],
    ['a NUL in the owner', 'reason: ok\n    owner: "x\\0"', /the owner of rule "a" contains a NUL character/],
  ])('%s is a located error at check time', async (_n, line, why) => {
    const l = await loadText(ok(`allow:\n  - name: a\n    to: [192.0.2.1]\n    ${line}\n`));
    const e = l.diagnostics.find((d) => d.severity === 'error');
    expect(e?.code).toBe('bad-value');
    expect(e?.message).toMatch(why);
    expect(e?.span).toBeDefined();
  });

  test('a paired surrogate (an emoji) is fine', async () => {
    const l = await loadText(ok('allow:\n  - name: a\n    to: [192.0.2.1]\n    reason: "mail 📧"\n'));
    expect(l.diagnostics).toEqual([]);
  });
});

describe('special-purpose answers for names (D16)', () => {
  test('loopback, link-local and mapped addresses a name resolves to are dropped with a warning; the others are kept', async () => {
    const l = await loadText(ok('allow:\n  - name: a\n    to: [meta.example]\n    ports: [tcp/80]\n    reason: r\n'), {
      hosts: { 'meta.example': { ipv4: ['169.254.169.254', '192.0.2.5', '127.0.0.1'], ipv6: ['::ffff:198.51.100.9', '2001:db8::5'] } },
    });
    expect(l.diagnostics.map((d) => [d.code, d.message])).toEqual([
      ['special-address', '"meta.example" resolved to 127.0.0.1, a special-purpose address (loopback); it is not admitted'],
      ['special-address', '"meta.example" resolved to 169.254.169.254, a special-purpose address (link-local, where the cloud metadata service 169.254.169.254 lives); it is not admitted'],
      ['special-address', '"meta.example" resolved to ::ffff:198.51.100.9, a special-purpose address (IPv4-mapped, never on the wire as such); it is not admitted'],
    ]);
    // The host line says what the name resolved to; no rule admits the special ones.
    const rules = printIr(l.ir!).split('\n').filter((x) => !x.startsWith('host '));
    expect(rules.join('\n')).not.toMatch(/169\.254|127\.0\.0\.1|::ffff/);
    expect(rules.join('\n')).toMatch(/192\.0\.2\.5/);
  });

  test('written in the policy itself, such an address is taken as meant', async () => {
    const l = await loadText(ok('deny:\n  - name: meta\n    to: [169.254.169.254]\n    reason: r\n'));
    expect(l.diagnostics).toEqual([]);
  });
});

describe('reasons can be required (require_reason, check --strict)', () => {
  test('require_reason: true makes a missing reason a located error', async () => {
    expect(await diags(ok('require_reason: true\nallow:\n  - name: a\n    to: [192.0.2.1]\n  - name: b\n    to: [192.0.2.2]\n    reason: r\n'))).toEqual([
      { code: 'reason-required', severity: 'error', at: 'policy.yaml:4:11', hint: expect.stringMatching(/add "reason:"/) },
    ]);
  });

  test('without it, a missing reason stays a warning', async () => {
    expect((await diags(ok('allow:\n  - name: a\n    to: [192.0.2.1]\n'))).map((d) => [d.code, d.severity])).toEqual([['missing-reason', 'warning']]);
  });
});

describe('files in another encoding are said to be (D13)', () => {
  test('a Latin-1 byte in a comment: located where it is, not "binary data" at 1:1', async () => {
    const text = Buffer.from('version: 1\n# caf\xe9\nallow: []\n', 'latin1').toString('utf8');
    expect(await diags(text)).toEqual([{ code: 'binary-file', severity: 'error', at: 'policy.yaml:2:6', hint: expect.stringMatching(/-f LATIN1 -t UTF-8/) }]);
  });

  test('UTF-16: said so, with the conversion to run', async () => {
    const text = Buffer.from('\ufeffversion: 1\nallow: []\n', 'utf16le').toString('utf8');
    const [d] = await diags(text);
    expect(d).toEqual({ code: 'binary-file', severity: 'error', at: 'policy.yaml:1:1', hint: expect.stringMatching(/-f UTF-16 -t UTF-8/) });
  });
});

describe('an IPv4-mapped literal (D16)', () => {
  test('warns that it matches nothing and does not cover the IPv4 address', async () => {
    expect(await diags(ok('deny:\n  - name: d\n    to: ["::ffff:198.51.100.9"]\n    reason: r\n'))).toEqual([
      { code: 'special-address', severity: 'warning', at: 'policy.yaml:4:10', hint: 'write the IPv4 address (or range) itself' },
    ]);
  });

  test('a wider destination that merely contains the mapped range (::/0, ::/64) is not one (it was warned of)', async () => {
    expect(await diags(ok('allow:\n  - name: a\n    to: ["::/0", "::/64", "::ffff:0:0/96"]\n    reason: r\n'))).toEqual([
      { code: 'special-address', severity: 'warning', at: 'policy.yaml:4:27', hint: 'write the IPv4 address (or range) itself' },
    ]);
  });
});
