/**
 * An in-memory kernel: the `LinuxKernel` the life cycle drives
 * (kernel/backend.ts), without root, processes or namespaces, so the settle
 * and interrupt cases of kernel/lifecycle.ts run in milliseconds. The idea
 * is knftables' `Fake`: the same interface as the real thing, a ruleset held
 * in memory, and a `dump()` to assert on. It stands beside the kernel tests
 * (test/kernel/lifecycle.kernel.test.ts), never instead of them: only the
 * kernel says what nft and iptables really accept and how they list it.
 *
 * What it models, as small interpreters of the text the real loaders are fed:
 * - nft: tables by `family name`, each with its comment, named counters,
 *   named sets (type, flags, elements) and chains (header line, rule lines).
 *   A script runs as one transaction: all of it or, on the first error,
 *   none of it. It reads what egress emits: `table … {}`, `delete table`,
 *   `table … { … }` blocks, `flush set`, `add element`.
 * - iptables: the filter table of each family, loaded with
 *   `iptables-restore --noflush` semantics: `*filter` … `COMMIT` is one
 *   transaction; `:CHAIN` creates a chain (and flushes an existing one, as
 *   iptables-restore 1.8.9 (nf_tables) does), `-N -F -X -A -I -D`; `-X` refuses a chain
 *   that is missing, builtin, not empty, or still jumped to; `-A`/`-I` refuse
 *   an unknown chain or jump target; `-D` refuses a rule that is not there.
 *   Loads go through the product's own adaptation to what is live
 *   (`iptablesInputs`, `iptablesRemove`), IPv6 first, one commit per family,
 *   exactly as kernel/iptables.ts runs them.
 * - What is live is listed as a `LiveRuleset` (plan/types.ts): nft directly
 *   from the tables; iptables by printing `iptables-save -c` text and reading
 *   it with the product's parser (`readIptablesSaves`), so `Live.save` is
 *   real input for the next load. `canonical` loads into a fresh, empty
 *   kernel (the scratch namespace) and lists that. The listing is a pure
 *   function of the loaded text, so the life cycle's fingerprint comparisons
 *   mean what they mean against the kernel: same text, same fingerprint;
 *   another rule, set element or chain, another fingerprint.
 *
 * What it does not model: packets (no matching, counters stay 0, no
 * handles); the kernel's re-spelling of rules (a rule's key is its text as
 * loaded, where nft would list its expressions: two spellings
 * nft lists alike differ here — the life cycle only compares a ruleset with
 * itself); expression syntax (rules are opaque text); tables other than
 * iptables' filter; interval merging beyond the product's own element
 * normalization; installed tools (say which with `installed`).
 *
 * Faults:
 * - `failNext(op)`: the next check, load or set refresh is refused, as a
 *   `LoadFailure` built by the product's own `nftFailure`/`iptablesFailure`
 *   (for iptables, `family` says which restore fails: a load that fails at
 *   `ipv4` has already committed IPv6).
 * - `crashAt(step)`: the process dies at a named step. The fake calls
 *   `onCrash` (a test freezes the state directory there), throws
 *   `FakeCrash`, and refuses every later call until `revive()`, so nothing
 *   the dying command would still try reaches the kernel. Steps, per
 *   operation (`load`, `remove`, `refresh`): `before` (nothing changed yet:
 *   e.g. after the intent record, before the kernel), `between-families`
 *   (iptables: one family committed, the other not), `after` (the kernel
 *   changed, nothing recorded yet).
 */
import { readIptablesLive as readOwned, readIptablesSaves } from '../backends/iptables/parse-live.js';
import { iptablesRemove } from '../backends/iptables/reapply.js';
import { normalizeElements } from '../backends/nft/parse-live.js';
import type { Artifact, LinuxTarget } from '../backends/types.js';
import { emptyLive, type LiveRule, type LiveRuleset } from '../backends/live.js';
import type { Family } from '../policy/address.js';
import type { Live, LinuxKernel } from './backend.js';
import { iptablesFailure, iptablesInputs } from './iptables.js';
import { nftFailure, NFT_REMOVE_SCRIPT, type LoadFailure } from './nft.js';
import { KernelError } from './where.js';

export type FakeOp = 'load' | 'remove' | 'refresh';
export type CrashStep = `${FakeOp}:${'before' | 'between-families' | 'after'}`;

/** The process "died" at `step` (see the header): a test expects exactly this. */
export class FakeCrash extends Error {
  constructor(readonly step: CrashStep) {
    super(`fake kernel: the process died at ${step}`);
  }
}

export interface FakeKernelOptions {
  /** Which backends' tools are "installed" (default both). */
  installed?: Partial<Record<LinuxTarget, boolean>>;
}

interface NftSet {
  type: string;
  flags: string[];
  elements: string[];
}
interface NftChain {
  head: string[];
  rules: string[];
}
interface NftTable {
  comment?: string;
  counters: string[];
  sets: Map<string, NftSet>;
  chains: Map<string, NftChain>;
}
/** Tables by `family name`, e.g. `inet egress`. */
type NftState = Map<string, NftTable>;

interface IptChain {
  /** `ACCEPT`/`DROP` for builtin chains, `-` for user chains. */
  policy: string;
  /** Rule specs, without `-A CHAIN`. */
  rules: string[];
}
/** One family's filter table: chains by name, builtins first. */
type IptTable = Map<string, IptChain>;

const FAMILIES = ['ipv4', 'ipv6'] as const;
const EGRESS_TABLE = 'inet egress';
const BUILTIN_CHAINS = ['INPUT', 'FORWARD', 'OUTPUT'];
/** Jump targets that are not chains (enough for what egress and the tests emit). */
const TARGETS = new Set(['ACCEPT', 'DROP', 'RETURN', 'REJECT', 'LOG', 'NFLOG', 'QUEUE', 'MARK', 'CONNMARK', 'AUDIT', 'TRACE']);
const RESTORE: Record<Family, string> = { ipv4: 'iptables-restore', ipv6: 'ip6tables-restore' };

interface Fault {
  op: 'check' | 'load' | 'refresh';
  family?: Family;
  message: string;
}
interface Crash {
  step: CrashStep;
  nth: number;
  onCrash?: () => void;
}

class ScriptError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

export class FakeKernel implements LinuxKernel {
  private nft: NftState = new Map();
  private ipt: Record<Family, IptTable> = { ipv4: emptyFilter(), ipv6: emptyFilter() };
  private faults: Fault[] = [];
  private crash: Crash | undefined;
  private seen = new Map<CrashStep, number>();
  private dead: CrashStep | undefined;

  constructor(private readonly opts: FakeKernelOptions = {}) {}

  // --- fault injection --------------------------------------------------

  /** Refuse the next `op` (for iptables, at `family`'s restore; default the first one run). */
  failNext(op: Fault['op'], opts: { family?: Family; message?: string } = {}): void {
    this.faults.push({ op, ...(opts.family ? { family: opts.family } : {}), message: opts.message ?? 'injected failure' });
  }

  /** Die at the `nth` (default first) time `step` is reached from now on. */
  crashAt(step: CrashStep, opts: { nth?: number; onCrash?: () => void } = {}): void {
    this.crash = { step, nth: opts.nth ?? 1, ...(opts.onCrash ? { onCrash: opts.onCrash } : {}) };
    this.seen.clear();
  }

  /** The step the kernel "died" at, until `revive()`. */
  get crashed(): CrashStep | undefined {
    return this.dead;
  }

  /** A new process: the kernel answers again (what is live is kept). Pending faults are dropped. */
  revive(): void {
    this.dead = undefined;
    this.crash = undefined;
    this.faults = [];
  }

  // --- what another administrator does (no faults, no crash) ------------

  /** `nft -f -` by hand. Throws KernelError when refused. */
  runNft(script: string): void {
    this.nft = runNftScript(this.nft, script, '<fake>').state;
  }

  /** `iptables-restore --noflush` (or ip6tables-) by hand. Throws KernelError when refused. */
  restoreIptables(f: Family, input: string): void {
    const r = restore(this.ipt[f], input);
    if ('error' in r) throw new KernelError(`${RESTORE[f]}: ${r.error}`, r.error);
    this.ipt[f] = r.table;
  }

  /**
   * Everything live, as stable text: nft tables (sorted by name) in a
   * `nft list`-like layout, and each family's filter table as
   * `iptables-save` (without `-c`) prints it. `b` limits it to one backend.
   */
  dump(b?: LinuxTarget): string {
    const out: string[] = [];
    if (b !== 'iptables') out.push('# nft', ...[...this.nft.keys()].sort().map((k) => dumpNftTable(k, this.nft.get(k)!)));
    if (b !== 'nft') for (const f of FAMILIES) out.push(`# iptables ${f}`, saveText(this.ipt[f], false).trimEnd());
    return out.join('\n') + '\n';
  }

  // --- LinuxKernel ------------------------------------------------------

  installed(b: LinuxTarget): boolean {
    return this.opts.installed?.[b] ?? true;
  }

  async readLive(b: LinuxTarget): Promise<Live> {
    this.alive();
    if (!this.installed(b)) return { live: emptyLive(b) };
    if (b === 'nft') return { live: nftLive(this.nft) };
    const save = { ipv4: saveText(this.ipt.ipv4), ipv6: saveText(this.ipt.ipv6) };
    return { live: readIptablesSaves(save), save };
  }

  async checkLoad(b: LinuxTarget, art: Artifact, cur: Live): Promise<LoadFailure | undefined> {
    this.alive();
    const fault = this.takeFault('check');
    if (b === 'nft') {
      if (fault) return nftFailure(`/dev/stdin:1:1-1: Error: ${fault.message}`, art);
      try {
        runNftScript(this.nft, art.text, '/dev/stdin');
        return undefined;
      } catch (e) {
        return nftFailure((e as KernelError).output, art);
      }
    }
    const inputs = iptablesInputs(art, cur.save ?? { ipv4: '', ipv6: '' });
    for (const f of FAMILIES) {
      if (fault && (fault.family ?? 'ipv4') === f) return iptablesFailure(f, `${RESTORE[f]}: line 1 failed: ${fault.message}`, art);
      const r = restore(this.ipt[f], inputs[f]);
      if ('error' in r) return iptablesFailure(f, `${RESTORE[f]}: ${r.error}`, art);
    }
    return undefined;
  }

  async load(b: LinuxTarget, art: Artifact, cur: Live): Promise<LoadFailure | undefined> {
    this.alive();
    this.step('load:before');
    const fault = this.takeFault('load');
    if (b === 'nft') {
      if (fault) return nftFailure(`/dev/stdin:1:1-1: Error: ${fault.message}`, art);
      try {
        this.nft = runNftScript(this.nft, art.text, '/dev/stdin').state;
      } catch (e) {
        return nftFailure((e as KernelError).output, art);
      }
    } else {
      const inputs = iptablesInputs(art, cur.save ?? { ipv4: '', ipv6: '' });
      for (const f of ['ipv6', 'ipv4'] as const) {
        if (f === 'ipv4') this.step('load:between-families');
        if (fault && (fault.family ?? 'ipv6') === f) return iptablesFailure(f, `${RESTORE[f]}: line 1 failed: ${fault.message}`, art);
        const r = restore(this.ipt[f], inputs[f]);
        if ('error' in r) return iptablesFailure(f, `${RESTORE[f]}: ${r.error}`, art);
        this.ipt[f] = r.table;
      }
    }
    this.step('load:after');
    return undefined;
  }

  async removeOwned(b: LinuxTarget, cur: Live): Promise<void> {
    this.alive();
    if (!cur.live.present) return;
    this.step('remove:before');
    if (b === 'nft') this.nft = runNftScript(this.nft, NFT_REMOVE_SCRIPT, '/dev/stdin').state;
    else {
      let committed = 0;
      for (const f of FAMILIES) {
        const owned = readOwned(cur.save?.[f] ?? '');
        if (!owned.jumps && !owned.chains.length) continue;
        if (committed++) this.step('remove:between-families');
        this.restoreIptables(f, iptablesRemove(owned));
      }
    }
    this.step('remove:after');
  }

  async canonical(b: LinuxTarget, art: Artifact): Promise<LiveRuleset> {
    this.alive();
    const scratch = new FakeKernel();
    const failure = await scratch.load(b, art, await scratch.readLive(b));
    if (failure) throw new KernelError(failure.message, failure.output);
    return (await scratch.readLive(b)).live;
  }

  async loadNftScript(script: string): Promise<void> {
    this.alive();
    this.step('refresh:before');
    const fault = this.takeFault('refresh');
    if (fault) throw new KernelError(`nft -f -: exit 1: ${fault.message}`, fault.message);
    this.nft = runNftScript(this.nft, script, '/dev/stdin').state;
    this.step('refresh:after');
  }

  // --- internals --------------------------------------------------------

  private alive(): void {
    if (this.dead) throw new FakeCrash(this.dead);
  }

  private step(step: CrashStep): void {
    if (!this.crash || this.crash.step !== step) return;
    const n = (this.seen.get(step) ?? 0) + 1;
    this.seen.set(step, n);
    if (n !== this.crash.nth) return;
    this.dead = step;
    this.crash.onCrash?.();
    throw new FakeCrash(step);
  }

  private takeFault(op: Fault['op']): Fault | undefined {
    const i = this.faults.findIndex((f) => f.op === op);
    return i < 0 ? undefined : this.faults.splice(i, 1)[0];
  }
}

// --- nft ----------------------------------------------------------------

type NftFrame =
  | { kind: 'table'; table: NftTable }
  | { kind: 'set'; table: NftTable; name: string; set: NftSet }
  | { kind: 'elements'; set: NftSet }
  | { kind: 'chain'; chain: NftChain };

/**
 * Run an nft script against a copy of `state`: the new state, or a
 * KernelError whose output reads like nft's (`FILE:LINE:1-1: Error: …`).
 */
function runNftScript(state: NftState, script: string, file: string): { state: NftState } {
  const next = structuredClone(state);
  const lines = script.split('\n');
  const stack: NftFrame[] = [];
  try {
    lines.forEach((raw, i) => nftLine(next, stack, raw.trim(), i + 1));
    if (stack.length) throw new ScriptError(lines.length, 'syntax error, unexpected end of file');
  } catch (e) {
    if (!(e instanceof ScriptError)) throw e;
    const output = `${file}:${e.line}:1-1: Error: ${e.message}`;
    throw new KernelError(`nft -f -: exit 1: ${output}`, output);
  }
  return { state: next };
}

function nftLine(state: NftState, stack: NftFrame[], line: string, n: number): void {
  if (line === '' || line.startsWith('#')) return;
  const top = stack.at(-1);
  const fail = (msg: string): never => {
    throw new ScriptError(n, msg);
  };
  const table = (name: string): NftTable => {
    let t = state.get(name);
    if (!t) state.set(name, (t = { counters: [], sets: new Map(), chains: new Map() }));
    return t;
  };
  const existingSet = (tname: string, sname: string): NftSet => {
    const s = state.get(tname)?.sets.get(sname);
    return s ?? fail(`Could not process rule: No such file or directory (set ${tname} ${sname})`);
  };
  let m: RegExpExecArray | null;
  if (!top) {
    if ((m = /^table (\S+ \S+) \{\}$/.exec(line))) table(m[1]!);
    else if ((m = /^table (\S+ \S+) \{$/.exec(line))) stack.push({ kind: 'table', table: table(m[1]!) });
    else if ((m = /^delete table (\S+ \S+)$/.exec(line))) {
      if (!state.delete(m[1]!)) fail(`Could not process rule: No such file or directory (table ${m[1]})`);
    } else if ((m = /^flush set (\S+ \S+) (\S+)$/.exec(line))) existingSet(m[1]!, m[2]!).elements = [];
    else if ((m = /^add element (\S+ \S+) (\S+) \{ (.*) \}$/.exec(line))) {
      const s = existingSet(m[1]!, m[2]!);
      s.elements = normalizeElements([...s.elements, ...splitElements(m[3]!)]);
    } else fail(`syntax error, unexpected ${line.split(' ')[0]}`);
    return;
  }
  switch (top.kind) {
    case 'table':
      if (line === '}') stack.pop();
      else if ((m = /^comment "([^"]*)"$/.exec(line))) top.table.comment = m[1]!;
      else if ((m = /^counter (\S+) \{\}$/.exec(line))) {
        if (!top.table.counters.includes(m[1]!)) top.table.counters.push(m[1]!);
      } else if ((m = /^set (\S+) \{$/.exec(line))) {
        const old = top.table.sets.get(m[1]!);
        stack.push({ kind: 'set', table: top.table, name: m[1]!, set: old ?? { type: '', flags: [], elements: [] } });
      } else if ((m = /^chain (\S+) \{$/.exec(line))) {
        let c = top.table.chains.get(m[1]!);
        if (!c) top.table.chains.set(m[1]!, (c = { head: [], rules: [] }));
        stack.push({ kind: 'chain', chain: c });
      } else fail(`syntax error, unexpected ${line.split(' ')[0]} in a table`);
      return;
    case 'set':
      if (line === '}') {
        if (!top.set.type) fail(`set ${top.name} has no type`);
        top.table.sets.set(top.name, top.set);
        stack.pop();
      } else if ((m = /^type (\S+)$/.exec(line))) top.set.type = m[1]!;
      else if ((m = /^flags (.+)$/.exec(line))) top.set.flags = m[1]!.split(',').map((f) => f.trim()).sort();
      else if (/^size \d+$/.test(line)) return; // a capacity, not part of what the fake compares
      else if ((m = /^elements = \{ (.*) \}$/.exec(line))) top.set.elements = normalizeElements([...top.set.elements, ...splitElements(m[1]!)]);
      else if (line === 'elements = {') stack.push({ kind: 'elements', set: top.set });
      else fail(`syntax error, unexpected ${line.split(' ')[0]} in a set`);
      return;
    case 'elements':
      if (line === '}') stack.pop();
      else top.set.elements = normalizeElements([...top.set.elements, ...splitElements(line)]);
      return;
    case 'chain':
      if (line === '}') stack.pop();
      else if (/^type /.test(line) || /^comment "[^"]*"$/.test(line)) top.chain.head.push(line);
      else top.chain.rules.push(line);
      return;
  }
}

function splitElements(text: string): string[] {
  return text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
}

/** `table inet egress` as a LiveRuleset (what `nft -j list table inet egress` gives the real one). */
function nftLive(state: NftState): LiveRuleset {
  const live = emptyLive('nft');
  const t = state.get(EGRESS_TABLE);
  if (!t) return live;
  live.present = true;
  const inChain = [...t.chains.values()].flatMap((c) => c.head).find((h) => /^comment "egress: mode /.test(h));
  const m = /^comment "egress: mode (\w+), default (\w+)"$/.exec(inChain ?? '') ?? /^egress: mode (\w+), default (\w+)$/.exec(t.comment ?? '');
  if (t.comment !== undefined) live.comment = t.comment;
  if (m) {
    live.mode = m[1]!;
    live.default = m[2]!;
  }
  for (const [name, c] of t.chains)
    live.chains.set(
      name,
      c.rules.map((text): LiveRule => {
        const comment = / comment "([^"]*)"$/.exec(text)?.[1];
        return { key: text, text, ...(comment !== undefined ? { comment } : {}) };
      }),
    );
  for (const [name, s] of t.sets) live.sets.set(name, { type: s.type, flags: [...s.flags], elements: [...s.elements] });
  for (const name of t.counters) live.counters.set(name, { packets: 0, bytes: 0 });
  return live;
}

function dumpNftTable(name: string, t: NftTable): string {
  const out = [`table ${name} {`];
  if (t.comment !== undefined) out.push(`\tcomment "${t.comment}"`);
  for (const c of t.counters) out.push(`\tcounter ${c}`);
  for (const [n, s] of t.sets) out.push(`\tset ${n} { type ${s.type};${s.flags.length ? ` flags ${s.flags.join(',')};` : ''} elements = { ${s.elements.join(', ')} } }`);
  for (const [n, c] of t.chains) out.push(`\tchain ${n} {`, ...c.head.map((h) => `\t\t${h}`), ...c.rules.map((r) => `\t\t${r}`), '\t}');
  out.push('}');
  return out.join('\n');
}

// --- iptables -----------------------------------------------------------

function emptyFilter(): IptTable {
  return new Map(BUILTIN_CHAINS.map((c) => [c, { policy: 'ACCEPT', rules: [] }]));
}

/**
 * `iptables-restore --noflush` of `input` into a copy of `table`: the new
 * table, or the error as the tool words it (`line N failed: …`).
 */
function restore(table: IptTable, input: string): { table: IptTable } | { error: string } {
  let committed = table;
  let work: IptTable | undefined;
  const lines = input.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const fail = (why: string) => ({ error: `line ${i + 1} failed: ${why}` });
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      if (work) return fail('table opened twice without COMMIT');
      if (line !== '*filter') return fail(`the fake kernel has no table ${line.slice(1)}`);
      work = structuredClone(committed);
      continue;
    }
    if (!work) return fail('no table opened');
    if (line === 'COMMIT') {
      committed = work;
      work = undefined;
      continue;
    }
    const why = restoreLine(work, line);
    if (why) return fail(why);
  }
  if (work) return { error: `line ${lines.length} failed: COMMIT expected` };
  return { table: committed };
}

/** One restore command applied to `t`; the reason when the kernel would refuse it. */
function restoreLine(t: IptTable, line: string): string | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^:(\S+) (\S+)(?: \[\d+:\d+\])?$/.exec(line))) {
    const [, name, policy] = m;
    const c = t.get(name!);
    if (BUILTIN_CHAINS.includes(name!)) {
      if (policy !== '-') c!.policy = policy!;
    } else if (c) c.rules = [];
    else t.set(name!, { policy: '-', rules: [] });
    return undefined;
  }
  if ((m = /^-N (\S+)$/.exec(line))) {
    if (t.has(m[1]!)) return `Chain already exists: ${m[1]}`;
    t.set(m[1]!, { policy: '-', rules: [] });
    return undefined;
  }
  if ((m = /^-F (\S+)$/.exec(line))) {
    const c = t.get(m[1]!);
    if (!c) return `No chain/target/match by that name: ${m[1]}`;
    c.rules = [];
    return undefined;
  }
  if ((m = /^-X (\S+)$/.exec(line))) {
    const name = m[1]!;
    const c = t.get(name);
    if (!c || BUILTIN_CHAINS.includes(name)) return `No chain/target/match by that name: ${name}`;
    if (c.rules.length) return `Directory not empty: ${name}`;
    if ([...t.values()].some((o) => o.rules.some((r) => jumpTarget(r) === name))) return `Too many links: ${name} is still jumped to`;
    t.delete(name);
    return undefined;
  }
  if ((m = /^-([AID]) (\S+)(?: (.*))?$/.exec(line))) {
    const [, op, name, rest = ''] = m;
    const c = t.get(name!);
    if (!c) return `No chain/target/match by that name: ${name}`;
    if (op === 'D') {
      const i = c.rules.indexOf(rest);
      if (i < 0) return `Bad rule (does a matching rule exist in that chain?): ${name} ${rest}`;
      c.rules.splice(i, 1);
      return undefined;
    }
    let spec = rest;
    let at = op === 'A' ? c.rules.length : 0;
    const num = op === 'I' ? /^(\d+)(?: (.*))?$/.exec(rest) : null;
    if (num) {
      at = Number(num[1]) - 1;
      spec = num[2] ?? '';
      if (at < 0 || at > c.rules.length) return `Index of insertion too big: ${num[1]}`;
    }
    const target = jumpTarget(spec);
    if (target !== undefined && !TARGETS.has(target) && !t.has(target)) return `Couldn't load target \`${target}'`;
    c.rules.splice(at, 0, spec);
    return undefined;
  }
  return `unknown command: ${line}`;
}

function jumpTarget(spec: string): string | undefined {
  return /(?:^| )-[jg] (\S+)/.exec(spec)?.[1];
}

/** The table as `iptables-save [-c] -t filter` prints it: builtins, then user chains sorted, then rules chain by chain. */
function saveText(t: IptTable, counts = true): string {
  const builtins = BUILTIN_CHAINS.filter((c) => t.has(c));
  const users = [...t.keys()].filter((c) => !BUILTIN_CHAINS.includes(c)).sort();
  const out = ['*filter'];
  for (const c of [...builtins, ...users]) out.push(`:${c} ${t.get(c)!.policy} [0:0]`);
  for (const c of [...builtins, ...users]) for (const r of t.get(c)!.rules) out.push(`${counts ? '[0:0] ' : ''}-A ${c}${r ? ` ${r}` : ''}`);
  out.push('COMMIT');
  return out.join('\n') + '\n';
}
