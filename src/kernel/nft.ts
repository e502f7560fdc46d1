/**
 * nftables side of the life cycle: read what egress owns (`table inet
 * egress`), check and load a ruleset in one transaction, take it out, and
 * refresh hostname sets in place. Every load is a single `nft -f -` run: the
 * kernel commits the whole script or none of it.
 */
import { emitNftRefresh, NFT_TABLE } from '../backends/nft/emit.js';
import type { Artifact } from '../backends/types.js';
import { error, type Diagnostic } from '../diag/diagnostic.js';
import type { Ir } from '../ir/types.js';
import { formatAddress, parseAddress, type Family } from '../policy/address.js';
import { readNftLive } from '../backends/nft/parse-live.js';
import type { LiveRuleset } from '../backends/live.js';
import type { RuleRef } from '../policy/types.js';
import { KernelError, mustRun, runIn, withScratchNetns, type Where } from './where.js';

export const NFT_REMOVE_SCRIPT = `table ${NFT_TABLE} {}\ndelete table ${NFT_TABLE}\n`;

/** The live table; `ruleText` false skips the text listing (each nft process lists every set element: 0.3 s at 100,000). */
export async function readNft(w: Where, ruleText = true): Promise<LiveRuleset> {
  // Both listings at once: at 100k destinations each takes nft a third of a second, most of it the kernel listing every element.
  const [j, t] = await Promise.all([runIn(w, ['nft', '-j', 'list', 'table', 'inet', 'egress']), ruleText ? runIn(w, ['nft', '-a', '-t', 'list', 'table', 'inet', 'egress']) : undefined]);
  if (j.code !== 0) {
    if (/No such file or directory/.test(j.stderr)) return readNftLive(undefined);
    throw new KernelError(`cannot list table ${NFT_TABLE}: ${j.stderr.trim() || `nft exited ${j.code}`}`, j.stderr);
  }
  return readNftLive(j.stdout, t?.code === 0 ? t.stdout : undefined);
}

/** A loader failure pointing back at the policy where the loader's line number maps to a rule (nft and iptables alike). */
export interface LoadFailure {
  message: string;
  output: string;
  rules: { rule: RuleRef; line: string }[];
}

/** A kernel refusal as diagnostics: the policy rule the failing line came from, with the loader's own text as a note. */
export function kernelDiagnostics(f: LoadFailure): Diagnostic[] {
  const note = { message: `${f.output.split('\n').slice(0, 6).join('\n  ')}` };
  if (!f.rules.length) return [error('kernel-rejected', f.message, undefined, { notes: [note] })];
  return f.rules.map(({ rule, line }) =>
    error('kernel-rejected', `rule "${rule.name}" was rejected by the kernel: ${f.message}`, rule.span, { notes: [note], ...(line ? { hint: `generated line: ${line}` } : {}) }),
  );
}

/**
 * The artifact plus, in the same transaction, the learned elements of the
 * live `flags timeout` sets (`dns.proxy`) that it declares too, each with the
 * seconds it had left. Every load replaces the table, and without this each
 * address the DNS forwarder admitted would be forgotten by an apply or a
 * rollback until a program asked for it again. Only what parses as an
 * address of the set's family is carried.
 */
export function withLearned(art: Artifact, live: LiveRuleset): Artifact {
  const declared = timeoutSets(art.text);
  const lines: string[] = [];
  for (const [name, set] of live.sets) {
    const family = declared.get(name);
    if (!family || !set.learned?.length) continue;
    const keep = set.learned.filter((l) => l.expiresSec >= 1 && parseAddress(l.element)?.family === family);
    for (let i = 0; i < keep.length; i += 1000)
      lines.push(`add element ${NFT_TABLE} ${name} { ${keep.slice(i, i + 1000).map((l) => `${formatAddress(family, parseAddress(l.element)!.value)} timeout ${l.expiresSec}s`).join(', ')} }`);
  }
  return lines.length ? { text: art.text + lines.join('\n') + '\n', lineMap: art.lineMap } : art;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The artifact as a load that keeps the live `flags timeout` sets it
 * declares too in the kernel, elements and all, rather than carrying their
 * elements over (`withLearned`): the emitted head (`table inet egress {}` +
 * `delete table inet egress`) becomes `flush table inet egress` and the
 * deletion of every live chain, counter and set but those, on the same two
 * lines (so the artifact's line numbers still hold). One transaction as
 * before. Carrying over cannot be made safe: what the DNS forwarder
 * publishes between apply's read of the live table and its load would be
 * lost (the DNS re-apply kernel test saw connects to just-answered addresses
 * rejected), and re-adding the read elements would shorten any the forwarder
 * refreshed meanwhile. Undefined when there is nothing to keep, or when the
 * table's comment must change (only from a table an older egress loaded,
 * with mode and default in it): the kernel does not update the comment of an
 * existing table.
 */
export function keepingLearned(art: Artifact, live: LiveRuleset): Artifact | undefined {
  const head = `table ${NFT_TABLE} {}\ndelete table ${NFT_TABLE}\n`;
  const declared = timeoutSets(art.text);
  const keep = new Set([...live.sets].filter(([name, set]) => declared.has(name) && set.learned !== undefined).map(([name]) => name));
  // The table's comment is the same for every policy (mode and default are in the output chain, re-created here);
  // a table an older egress loaded, with mode and default in its comment, is replaced once.
  const comment = /^\tcomment "([^"]*)"$/m.exec(art.text);
  const names = [...live.chains.keys(), ...live.sets.keys(), ...live.counters.keys()];
  if (!live.present || !keep.size || !art.text.includes(head) || !comment || comment[1] !== live.comment || !names.every((n) => IDENT.test(n))) return undefined;
  const drop = [
    ...[...live.chains.keys()].map((c) => `delete chain ${NFT_TABLE} ${c}`),
    ...[...live.sets.keys()].filter((n) => !keep.has(n)).map((n) => `delete set ${NFT_TABLE} ${n}`),
    ...[...live.counters.keys()].map((c) => `delete counter ${NFT_TABLE} ${c}`),
  ];
  return { text: art.text.replace(head, `flush table ${NFT_TABLE}\n${drop.join('; ')}\n`), lineMap: art.lineMap };
}

/**
 * Check (`nft -c`) or load `art` over the live table: keeping the live
 * learned sets when `keepingLearned` applies, else (or when the kernel
 * refuses that script, say a set's declaration changed) replacing the table
 * with the learned elements carried over.
 */
export async function overLive(w: Where, art: Artifact, live: LiveRuleset, check: boolean): Promise<LoadFailure | undefined> {
  const go = check ? checkNft : loadNft;
  const kept = keepingLearned(art, live);
  if (kept && !(await go(w, kept))) return undefined;
  return go(w, withLearned(art, live));
}

/** The `flags timeout` sets an emitted script declares, with their family. */
function timeoutSets(text: string): Map<string, Family> {
  const out = new Map<string, Family>();
  for (const m of text.matchAll(/^\tset ([A-Za-z0-9_]+) \{\n\t\ttype (ipv4_addr|ipv6_addr)\n\t\tflags timeout\n/gm)) out.set(m[1]!, m[2] === 'ipv4_addr' ? 'ipv4' : 'ipv6');
  return out;
}

/** `nft -c -f -`: would the kernel take this script now? */
export async function checkNft(w: Where, art: Artifact): Promise<LoadFailure | undefined> {
  const r = await runIn(w, ['nft', '-c', '-f', '-'], art.text);
  return r.code === 0 ? undefined : nftFailure(r.stderr || r.stdout, art);
}

/** Load in one transaction. */
export async function loadNft(w: Where, art: Artifact): Promise<LoadFailure | undefined> {
  const r = await runIn(w, ['nft', '-f', '-'], art.text);
  return r.code === 0 ? undefined : nftFailure(r.stderr || r.stdout, art);
}

/** Take the table out (one transaction; nothing happens when it is not there). */
export async function removeNft(w: Where): Promise<void> {
  await mustRun(w, ['nft', '-f', '-'], NFT_REMOVE_SCRIPT);
}

/** The kernel's own listing of a ruleset, loaded into a scratch namespace. */
export async function canonicalNft(w: Where, art: Artifact): Promise<LiveRuleset> {
  return withScratchNetns(w.execer, async (s) => {
    const f = await loadNft(s, art);
    if (f) throw new KernelError(f.message, f.output);
    return readNft(s);
  });
}

/**
 * Rewrite the hostname sets in place (one transaction; rules and counters
 * untouched). Undefined when the structure changed and a full apply is needed.
 */
export function nftRefreshScript(ir: Ir, applied: string): string | undefined {
  return emitNftRefresh(ir, applied);
}

export async function loadNftScript(w: Where, script: string): Promise<void> {
  await mustRun(w, ['nft', '-f', '-'], script);
}

/** nft reports `/dev/stdin:LINE:COL-COL: Error: …`; map LINE through the artifact's lineMap. */
export function nftFailure(output: string, art: Artifact): LoadFailure {
  const rules: LoadFailure['rules'] = [];
  const lines = art.text.split('\n');
  for (const m of output.matchAll(/^(?:\/dev\/stdin|-):(\d+):\d+(?:-\d+)?: Error: (.*)$/gm)) {
    const n = Number(m[1]);
    const rule = art.lineMap.get(n);
    if (rule && !rules.some((r) => r.rule === rule)) rules.push({ rule, line: lines[n - 1]?.trim() ?? '' });
  }
  const first = output.split('\n').find((l) => /Error:/.test(l)) ?? output.split('\n')[0] ?? '';
  return { message: `nft rejected the ruleset: ${first.replace(/^.*?Error: /, '').trim()}`, output: output.trim(), rules };
}
