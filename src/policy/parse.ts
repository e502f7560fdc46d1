/**
 * YAML text → PolicyAst, keeping a span for every value.
 *
 * Structural errors (YAML syntax, unknown keys, wrong types) come from the
 * yaml parser and the zod schema, mapped back to source positions through
 * `doc.getIn(path, true).range`. The AST is then built tolerantly from the
 * YAML nodes: a value of the wrong type is skipped (its error is already
 * reported), so one run reports every problem in the file.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, parseDocument, visit, type Document, type Node, type Pair, type YAMLMap } from 'yaml';
import type { z } from 'zod';
import { error, q, type Diagnostic, type Result } from '../diag/diagnostic.js';
import type { SourceFile, Span } from '../diag/source.js';
import type { Bool, DnsAst, ForwardAst, ForwardSourceAst, PolicyAst, RuleAst, SelectorsAst, SetAst, Str } from './ast.js';
import { KEYS, PolicySchema } from './schema.js';
import { didYouMean } from './suggest.js';

type Path = (string | number)[];

export function parsePolicy(src: SourceFile): Result<PolicyAst> {
  const diagnostics: Diagnostic[] = [];
  const whole = src.span(0, Math.min(src.text.length, 1));
  const encoding = encodingProblem(src.text);
  if (encoding) {
    const at = encoding.at === undefined ? whole : src.span(encoding.at, encoding.at + 1);
    // Never an excerpt: the line is not text this tool can show faithfully (it was NULs and raw bytes on the terminal).
    diagnostics.push(error('binary-file', encoding.message, at, { hint: `save the policy as UTF-8 (iconv -f ${encoding.from} -t UTF-8, or your editor's "save with encoding")`, excerpt: false }));
    return { diagnostics };
  }
  if (looksBinary(src.text)) {
    diagnostics.push(error('binary-file', 'this is not a text file (binary data found)', whole, { excerpt: false }));
    return { diagnostics };
  }
  if (src.text.trim() === '' || src.text.split('\n').every((l) => /^\s*(#.*)?$/.test(l))) {
    diagnostics.push(error('empty-file', 'the policy file is empty', whole, { hint: 'run "egress init" to write a starter policy' }));
    return { diagnostics };
  }
  const doc = parseDocument(src.text, { prettyErrors: false, uniqueKeys: true, strict: true, keepSourceTokens: false });
  // yaml's warnings are errors here: an unknown tag (`!evil x`, `!!js/function`) or directive would otherwise be dropped without a word.
  for (const e of [...doc.errors, ...doc.warnings]) {
    const [start, end] = e.pos;
    diagnostics.push(error('yaml-syntax', yamlMessage(e.message), src.span(start, Math.max(end, start + 1))));
  }
  if (diagnostics.length) return { diagnostics };
  if (!isMap(doc.contents)) {
    const r = (doc.contents as Node | null)?.range;
    diagnostics.push(error('bad-type', 'the policy must be a mapping of keys ("version", "allow", …)', r ? src.span(r[0], r[1]) : whole));
    return { diagnostics };
  }
  // yaml's own guard counts alias uses (101 uses of one `&reason` fail, with an internal error);
  // what must be bounded is what the aliases expand to (a "billion laughs" file).
  const size = expandedSize(doc, MAX_EXPANDED_NODES);
  if (size.over) {
    const r = size.at?.range;
    const at = r ? src.span(r[0], Math.max(r[1], r[0] + 1)) : whole;
    if (size.cycle) diagnostics.push(error('yaml-syntax', 'this alias is inside the value its anchor names, so it never ends', at, { hint: 'an alias (*name) copies what its anchor (&name) holds; it cannot be used within that value' }));
    else diagnostics.push(error('yaml-syntax', `aliases expand this document to more than ${MAX_EXPANDED_NODES.toLocaleString('en-US')} values`, at, { hint: 'an alias (*name) copies what its anchor (&name) holds; nested aliases multiply' }));
    return { diagnostics };
  }
  // The AST is built from the nodes: put each alias's anchored node in its place (shared, not copied),
  // so `to: *mirrors` is the anchor's list, not an empty one (a deny rule would otherwise match nothing).
  visit(doc, { Alias: (_, a) => a.resolve(doc) ?? visit.REMOVE });
  const data = doc.toJS({ maxAliasCount: -1 }) as Record<string, unknown>;
  const res = PolicySchema.safeParse(data);
  if (!res.success) {
    for (const issue of res.error.issues) diagnostics.push(...mapIssue(src, doc, data, issue, []));
  }
  const b = new AstBuilder(src);
  return { value: b.policy(doc.contents), diagnostics };
}

/** Far more values than any policy has: 1M rules would still fit; a billion-laughs expansion does not. */
const MAX_EXPANDED_NODES = 5_000_000;

/**
 * How many values `doc` holds once every alias is replaced by what its anchor
 * holds, counted without expanding (each node's size is computed once), and
 * the alias where the count passed `limit` — or the alias that sits inside
 * the very value it names (`a: &a { <<: *a }`), which has no finite
 * expansion at all.
 */
function expandedSize(doc: Document, limit: number): { over: boolean; cycle?: boolean; at?: Node } {
  const memo = new Map<unknown, number>();
  const open = new Set<unknown>();
  let at: Node | undefined;
  let cycle: Node | undefined;
  const size = (n: unknown): number => {
    if (n === null || n === undefined) return 1;
    const known = memo.get(n);
    if (known !== undefined) return known;
    if (open.has(n)) return 1; // reached again through an alias: the alias reports the cycle
    open.add(n);
    let total = 1;
    if (isAlias(n)) {
      const target = n.resolve(doc);
      if (open.has(target)) cycle ??= n;
      total = size(target);
      if (total > limit) at ??= n;
    } else if (isMap(n) || isSeq(n)) {
      for (const item of n.items as unknown[]) {
        total += isPair(item) ? size(item.key) + size(item.value) : size(item);
        if (total > limit) {
          at ??= isAlias(item) ? item : undefined;
          break;
        }
      }
    }
    open.delete(n);
    memo.set(n, total);
    return total;
  };
  const total = size(doc.contents);
  if (cycle) return { over: true, cycle: true, at: cycle };
  return total > limit ? { over: true, ...(at ? { at } : {}) } : { over: false };
}

/**
 * A text file in another encoding than UTF-8, said as such (it was "binary
 * data found" at 1:1): UTF-16 (a NUL beside most letters), or bytes that are
 * not UTF-8 in otherwise readable text (a Latin-1 "é" in a comment), with
 * where the first one is.
 */
function encodingProblem(text: string): { message: string; from: string; at?: number } | undefined {
  const sample = text.slice(0, 4096);
  const nuls = sample.split('\0').length - 1;
  if (sample.length >= 8 && nuls * 3 >= sample.length) return { message: 'this file is UTF-16 (a NUL beside every letter), not UTF-8', from: 'UTF-16' };
  const bad = text.indexOf('\uFFFD');
  if (bad >= 0 && nuls === 0 && controlRatio(text) <= 0.05) return { message: 'this is not valid UTF-8 here (a byte of another encoding, such as Latin-1?)', from: 'LATIN1', at: bad };
  return undefined;
}

/** NUL, invalid UTF-8 (decoded as U+FFFD) or many control characters: not a text file. Set files are judged the same way. */
export function looksBinary(text: string): boolean {
  return /[\x00\uFFFD]/.test(text) || controlRatio(text) > 0.05;
}

function controlRatio(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 32 && c !== 9 && c !== 10 && c !== 13) n++;
  }
  return text.length ? n / text.length : 0;
}

/** yaml's messages end with " at line L, column C:" and an excerpt; we print our own location. */
function yamlMessage(m: string): string {
  const first = m.split('\n')[0]!.replace(/ at line \d+, column \d+:?\s*$/, '').replace(/\.$/, '');
  return 'invalid YAML: ' + first.charAt(0).toLowerCase() + first.slice(1);
}

// ---- zod issues → diagnostics -------------------------------------------------

type Issue = z.core.$ZodIssue;

function nodeAt(doc: Document, path: Path): Node | undefined {
  if (path.length === 0) return doc.contents as Node;
  const n = doc.getIn(path, true) as Node | undefined;
  return n ?? undefined;
}

function spanOf(src: SourceFile, doc: Document, path: Path): Span {
  for (let p = path; ; p = p.slice(0, -1)) {
    const n = nodeAt(doc, p);
    if (n?.range) return src.span(n.range[0], Math.max(n.range[1], n.range[0] + 1));
    if (p.length === 0) return src.span(0, 1);
  }
}

function keyNode(doc: Document, path: Path, key: string): Node | undefined {
  const m = nodeAt(doc, path);
  if (!isMap(m)) return undefined;
  for (const it of m.items) if (isScalar(it.key) && String(it.key.value) === key) return it.key;
  return undefined;
}

function get(data: unknown, path: Path): unknown {
  let v = data;
  for (const k of path) v = v != null && typeof v === 'object' ? (v as Record<string | number, unknown>)[k] : undefined;
  return v;
}

/** "rule "dns"" or "allow[3]" or "set "mirrors"" or "log": where a path points, for messages. */
function context(data: unknown, path: Path): { where: string; keys: string[] } {
  const [top, idx, sub] = path;
  if ((top === 'allow' || top === 'deny') && typeof idx === 'number') {
    const name = get(data, [top, idx, 'name']);
    const where = typeof name === 'string' ? `rule ${q(name)}` : `${top}[${idx + 1}]`;
    if (sub === 'except') return { where: `the except of ${where}`, keys: KEYS.except };
    return { where, keys: KEYS.rule };
  }
  if (top === 'sets' && typeof idx === 'string') return { where: `set ${q(idx)}`, keys: KEYS.setFile };
  if (top === 'log') return { where: '"log"', keys: KEYS.log };
  if (top === 'builtins') return { where: '"builtins"', keys: KEYS.builtins };
  if (top === 'dns') return { where: '"dns"', keys: KEYS.dns };
  if (top === 'forward' && idx === 'sources' && typeof sub === 'string') return { where: `forward source ${q(sub)}`, keys: KEYS.forwardSource };
  if (top === 'forward') return { where: '"forward"', keys: KEYS.forward };
  return { where: 'the policy', keys: KEYS.policy };
}

const EXPECTED: Record<string, string> = {
  to: 'a destination or a list of destinations',
  ports: 'a port ("tcp/443") or a list of ports',
  icmp: 'an ICMP type name or a list of them',
  user: 'a user name or uid, or a list of them',
  group: 'a group name or gid, or a list of them',
  via: 'an interface name or a list of them',
  except: 'a mapping of selectors, or a list of such mappings',
  allow: 'a list of rules',
  deny: 'a list of rules',
  sets: 'a mapping of set names to lists',
  log: 'a mapping ("prefix", "rate", "uid")',
  builtins: 'a mapping ("loopback", "established", "icmpv6_nd")',
  dns: 'a mapping ("proxy", "upstream", "grace", "min_lifetime")',
  upstream: 'an address or a list of addresses',
  from: '"host" or a forward source name, or a list of them',
  forward: 'a mapping ("sources", "default", "unlisted")',
  sources: 'a mapping of source names to { interfaces, networks }',
  interfaces: 'an interface name or a list of them',
  networks: 'an address, CIDR or range, or a list of them',
  grace: 'a duration such as "60s"',
  min_lifetime: 'a duration such as "10s"',
};

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${q(v)}`;
  return `${typeof v} ${String(v)}`;
}

function mapIssue(src: SourceFile, doc: Document, data: unknown, issue: Issue, base: Path): Diagnostic[] {
  const path: Path = [...base, ...(issue.path as Path)];
  const ctx = context(data, path);
  const last = path[path.length - 1];
  const key = typeof last === 'string' ? last : typeof path[path.length - 2] === 'string' ? (path[path.length - 2] as string) : '';
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => {
        const kn = keyNode(doc, path, k);
        const span = kn?.range ? src.span(kn.range[0], kn.range[1]) : spanOf(src, doc, path);
        const hint = didYouMean(k, ctx.keys) ?? `allowed keys: ${ctx.keys.join(', ')}`;
        return error('unknown-key', `unknown key ${q(k)} in ${ctx.where}`, span, { hint });
      });
    case 'invalid_union': {
      // Pick the branch whose outer type matched and report its inner issues precisely.
      const matched = issue.errors.filter((branch) => !branch.some((i) => i.code === 'invalid_type' && i.path.length === 0));
      if (matched.length === 1) return matched[0]!.flatMap((i) => mapIssue(src, doc, data, i, path));
      const v = get(data, path);
      return [error('bad-type', `${q(String(key))} in ${ctx.where} must be ${EXPECTED[key] ?? 'a valid value'}, not ${describe(v)}`, spanOf(src, doc, path))];
    }
    case 'invalid_type': {
      const v = get(data, path);
      if (v === undefined) {
        return [error('missing-key', `missing required key ${q(String(last))} in ${ctx.where}`, spanOf(src, doc, path.slice(0, -1)))];
      }
      const hint =
        typeof v === 'number' && (key === 'ports' || base.includes('ports'))
          ? `write a port with its protocol, e.g. "tcp/${v}" or "udp/${v}"`
          : typeof v === 'number' && (key === 'grace' || key === 'min_lifetime')
            ? `write it with a unit, e.g. "${v}s"`
            : undefined;
      const what = typeof last === 'number' ? `item ${last + 1} of ${q(key)}` : q(String(last ?? 'policy'));
      const expected = typeof last === 'string' && EXPECTED[last] ? EXPECTED[last] : `a ${issue.expected}`;
      return [
        error('bad-type', `${what} in ${ctx.where} must be ${expected}, not ${describe(v)}`, spanOf(src, doc, path), hint ? { hint } : {}),
      ];
    }
    case 'invalid_value': {
      const v = get(data, path);
      if (v === undefined) return [error('missing-key', `missing required key ${q(String(last))} in ${ctx.where}`, spanOf(src, doc, path.slice(0, -1)))];
      if (path.length === 1 && last === 'version')
        return [error('bad-version', `unsupported policy version ${describe(v)}`, spanOf(src, doc, path), { hint: 'this egress reads "version: 1"' })];
      const options = issue.values.map(String);
      const hint = typeof v === 'string' ? didYouMean(v, options) : undefined;
      return [
        error('bad-value', `${q(String(last))} in ${ctx.where} must be one of ${options.join(', ')}, not ${describe(v)}`, spanOf(src, doc, path), {
          hint: hint ?? `one of: ${options.join(', ')}`,
        }),
      ];
    }
    default:
      return [error('bad-value', `${q(String(last ?? 'policy'))} in ${ctx.where}: ${issue.message.toLowerCase()}`, spanOf(src, doc, path))];
  }
}

// ---- tolerant AST builder ------------------------------------------------------

class AstBuilder {
  constructor(private readonly src: SourceFile) {}

  private span(n: Node | null | undefined): Span {
    const r = n?.range;
    return r ? this.src.span(r[0], Math.max(r[1], r[0] + 1)) : this.src.span(0, 1);
  }

  private pair(m: YAMLMap, key: string): Pair | undefined {
    return m.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === key) as Pair | undefined;
  }

  private val(m: YAMLMap, key: string): Node | undefined {
    const p = this.pair(m, key);
    return (p?.value as Node | null) ?? undefined;
  }

  private keySpan(m: YAMLMap, key: string): Span | undefined {
    const p = this.pair(m, key);
    return p && isScalar(p.key) ? this.span(p.key) : undefined;
  }

  private str(n: Node | undefined, allowNumber = false): Str | undefined {
    if (!isScalar(n)) return undefined;
    if (typeof n.value === 'string') return { value: n.value, span: this.span(n) };
    if (allowNumber && typeof n.value === 'number') {
      const text = n.source ?? String(n.value);
      return { value: String(text), span: this.span(n), numeric: true };
    }
    return undefined;
  }

  private bool(n: Node | undefined): Bool | undefined {
    return isScalar(n) && typeof n.value === 'boolean' ? { value: n.value, span: this.span(n) } : undefined;
  }

  /** A scalar or a list of scalars; wrong-typed items are skipped (already reported). */
  private list(n: Node | undefined, allowNumber = false): Str[] | undefined {
    if (n === undefined) return undefined;
    if (isSeq(n)) return n.items.map((i) => this.str(i as Node, allowNumber)).filter((x): x is Str => x !== undefined);
    const one = this.str(n, allowNumber);
    return one ? [one] : [];
  }

  private selectors(m: YAMLMap): SelectorsAst {
    const s: SelectorsAst = { span: this.span(m), keySpans: {} };
    for (const k of ['to', 'ports', 'icmp', 'via'] as const) {
      const v = this.list(this.val(m, k));
      if (v) s[k] = v;
    }
    for (const k of ['user', 'group'] as const) {
      const v = this.list(this.val(m, k), true);
      if (v) s[k] = v;
    }
    const fam = this.str(this.val(m, 'family'));
    if (fam) s.family = fam;
    for (const k of ['to', 'ports', 'icmp', 'user', 'group', 'via', 'family'] as const) {
      const ks = this.keySpan(m, k);
      if (ks) s.keySpans[k] = ks;
    }
    return s;
  }

  private rule(n: Node, action: 'allow' | 'deny'): RuleAst | undefined {
    if (!isMap(n)) return undefined;
    const r: RuleAst = { action, ...this.selectors(n) };
    for (const k of ['name', 'reason', 'owner', 'expires'] as const) {
      const v = this.str(this.val(n, k));
      if (v) r[k] = v;
    }
    const t = this.str(this.val(n, 'ticket'), true);
    if (t) r.ticket = t;
    const from = this.list(this.val(n, 'from'));
    if (from) r.from = from;
    const fromKey = this.keySpan(n, 'from');
    if (fromKey) r.fromKeySpan = fromKey;
    const ex = this.val(n, 'except');
    if (ex !== undefined) {
      const items = isSeq(ex) ? ex.items : [ex];
      r.except = items.filter((i): i is YAMLMap => isMap(i)).map((i) => this.selectors(i));
      const ks = this.keySpan(n, 'except');
      if (ks) r.exceptKeySpan = ks;
    }
    return r;
  }

  private rules(n: Node | undefined, action: 'allow' | 'deny'): RuleAst[] {
    if (!isSeq(n)) return [];
    return n.items.map((i) => this.rule(i as Node, action)).filter((x): x is RuleAst => x !== undefined);
  }

  private sets(n: Node | undefined): SetAst[] {
    if (!isMap(n)) return [];
    const out: SetAst[] = [];
    for (const p of n.items) {
      if (!isScalar(p.key)) continue;
      const name: Str = { value: String(p.key.value), span: this.span(p.key as Node) };
      const v = p.value as Node | null;
      if (isSeq(v)) out.push({ name, span: this.span(v), items: this.list(v, true) ?? [] });
      else if (isMap(v)) {
        const file = this.str(this.val(v, 'file'));
        out.push({ name, span: this.span(v), ...(file ? { file } : {}) });
      } else out.push({ name, span: name.span });
    }
    return out;
  }

  private dns(m: YAMLMap): DnsAst | undefined {
    const n = this.val(m, 'dns');
    const keySpan = this.keySpan(m, 'dns');
    if (!isMap(n) || !keySpan) return undefined;
    const d: DnsAst = { keySpan };
    const proxy = this.bool(this.val(n, 'proxy'));
    if (proxy) d.proxy = proxy;
    const up = this.list(this.val(n, 'upstream'));
    if (up) d.upstream = up;
    const upKey = this.keySpan(n, 'upstream');
    if (upKey) d.upstreamKeySpan = upKey;
    const grace = this.str(this.val(n, 'grace'));
    if (grace) d.grace = grace;
    const min = this.str(this.val(n, 'min_lifetime'));
    if (min) d.minLifetime = min;
    return d;
  }

  private forward(m: YAMLMap): ForwardAst | undefined {
    const n = this.val(m, 'forward');
    const keySpan = this.keySpan(m, 'forward');
    if (!isMap(n) || !keySpan) return undefined;
    const f: ForwardAst = { keySpan, sources: [] };
    const srcs = this.val(n, 'sources');
    const sk = this.keySpan(n, 'sources');
    if (sk) f.sourcesKeySpan = sk;
    if (isMap(srcs))
      for (const p of srcs.items) {
        if (!isScalar(p.key)) continue;
        const name: Str = { value: String(p.key.value), span: this.span(p.key as Node) };
        const v = p.value as Node | null;
        const s: ForwardSourceAst = { name, span: isMap(v) ? this.span(v) : name.span };
        if (isMap(v)) {
          const ifs = this.list(this.val(v, 'interfaces'));
          if (ifs) s.interfaces = ifs;
          const nets = this.list(this.val(v, 'networks'), true);
          if (nets) s.networks = nets;
          const ik = this.keySpan(v, 'interfaces');
          if (ik) s.interfacesKeySpan = ik;
          const nk = this.keySpan(v, 'networks');
          if (nk) s.networksKeySpan = nk;
        }
        f.sources.push(s);
      }
    const d = this.str(this.val(n, 'default'));
    if (d) f.default = d;
    const u = this.str(this.val(n, 'unlisted'));
    if (u) f.unlisted = u;
    return f;
  }

  policy(m: YAMLMap): PolicyAst {
    const ast: PolicyAst = {
      file: this.src.name,
      span: this.span(m),
      log: {},
      builtins: {},
      sets: this.sets(this.val(m, 'sets')),
      allow: this.rules(this.val(m, 'allow'), 'allow'),
      deny: this.rules(this.val(m, 'deny'), 'deny'),
    };
    const version = this.str(this.val(m, 'version'), true);
    if (version) ast.version = version;
    for (const k of ['mode', 'default'] as const) {
      const v = this.str(this.val(m, k));
      if (v) ast[k] = v;
    }
    const log = this.val(m, 'log');
    if (isMap(log)) {
      const prefix = this.str(this.val(log, 'prefix'));
      const rate = this.str(this.val(log, 'rate'));
      const uid = this.bool(this.val(log, 'uid'));
      if (prefix) ast.log.prefix = prefix;
      if (rate) ast.log.rate = rate;
      if (uid) ast.log.uid = uid;
    }
    const dns = this.dns(m);
    if (dns) ast.dns = dns;
    const fwd = this.forward(m);
    if (fwd) ast.forward = fwd;
    const rr = this.bool(this.val(m, 'require_reason'));
    if (rr) ast.requireReason = rr;
    const b = this.val(m, 'builtins');
    if (isMap(b))
      for (const k of ['loopback', 'established', 'icmpv6_nd'] as const) {
        const v = this.bool(this.val(b, k));
        if (v) ast.builtins[k] = v;
      }
    return ast;
  }
}
