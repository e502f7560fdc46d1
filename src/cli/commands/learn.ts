/**
 * `egress learn [LOG…] --policy POLICY [--dns-log FILE] [--write]`: allow
 * rules that would admit what the logs show denied, as YAML to review (with
 * `dns.proxy: true`, addresses the DNS forwarder had just answered for a name
 * are written as that name); `--write` merges them
 * into the policy file (comments and layout kept). Before anything is
 * printed as ready or written, the merged policy is loaded and every learned
 * flow is checked to be accepted by it.
 */
import { chmodSync, chownSync, realpathSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { errnoText } from '../../diag/errno.js';
import { MAX_POLICY_BYTES, readBounded } from '../../diag/read-file.js';
import { renderText } from '../../diag/render.js';
import { writeFileAtomic } from '../../kernel/atomic.js';
import { Deduper } from '../../observe/dedupe.js';
import { learnedYaml, learnRules, FlowCollector, verifyLearned } from '../../observe/learn.js';
import { NameIndex } from '../../observe/names.js';
import { mergeLearned, MergeError } from '../../observe/learn-merge.js';
import { LogReader } from '../../logs/read.js';
import { accountNames } from '../../observe/replay.js';
import { learnJson, learnText } from '../../report/learn.js';
import { CommandError, UsageError, type Io } from '../io.js';
import { writeResult } from '../envelope.js';
import { diagnosticsJson, failed, load, type PolicyFlags } from '../shared.js';
import { liveCounters, type StatsSeams } from './stats.js';
import { contextOf, progressOf, readDnsNames, readOptionsOf, runReader, sayPrefixHint, sourcesOf, type SourceFlags } from '../log-flags.js';

export interface LearnFlags extends SourceFlags, PolicyFlags {
  policy?: string;
  write?: boolean;
}

export async function learnCommand(io: Io, logs: string[], flags: LearnFlags, seams: StatsSeams = {}): Promise<number> {
  if (!flags.policy) throw new UsageError('learn needs --policy POLICY (the policy the learned rules are for)');
  if (flags.follow) throw new UsageError('learn reads recorded logs; --follow is for "egress stats"');
  const policyPath = resolvePath(io.cwd, flags.policy);
  const loaded = await load(io, flags.policy, flags);
  if (failed(loaded)) {
    if (flags.json) writeResult(io, 'learn', { ok: false, result: null, diagnostics: diagnosticsJson(loaded) });
    return 1;
  }
  const ir = loaded.ir!;
  const sources = await sourcesOf(io, logs, flags, seams);
  const opts = readOptionsOf(io, flags, seams, flags.prefix);
  const { accounts } = await contextOf(io, loaded);
  // The forwarder's answers first, so each denied connection can be matched with the answer that gave out its address.
  const answers = new NameIndex(ir.dns ?? { graceSec: 60, minLifetimeSec: 10 });
  const dnsCounts = await readDnsNames(io, flags, undefined, (r) => answers.add(r));
  const collector = new FlowCollector(ir, accounts, dnsCounts ? answers : undefined);
  const dedupe = new Deduper();
  const reader = new LogReader(sources, opts, (e) => collector.add(e, dedupe.isNew(e)));
  const progress = progressOf(io, flags, seams, sources, () => ({ bytes: reader.bytesRead, lines: reader.counts.lines }));
  try {
    await runReader(reader.run());
  } finally {
    progress.stop();
  }
  const counts = reader.counts;
  sayPrefixHint(io, counts, reader.otherPrefixes(), flags);
  const taken = [...loaded.policy!.allow, ...loaded.policy!.deny].map((r) => r.ref.name);
  const learned = learnRules(collector.seen(), { ir, accounts, taken });
  const names = accountNames(accounts);
  const describeUser = (uid: number) => names.users.get(uid) ?? `uid ${uid}`;
  const items = learnedYaml(learned.rules, describeUser);

  let policyText: string;
  try {
    policyText = readBounded(policyPath, MAX_POLICY_BYTES).toString('utf8');
  } catch (e) {
    throw new CommandError(`cannot read ${flags.policy}: ${errnoText(e)}`);
  }
  let merged: string;
  try {
    merged = mergeLearned(policyText, items);
  } catch (e) {
    if (e instanceof MergeError) throw new CommandError(`cannot merge into ${flags.policy}: ${e.message}`);
    throw e;
  }
  const check = await verifyLearned(learned, accounts, flags.policy, merged, {
    baseDir: resolvePath(policyPath, '..'),
    ...(io.resolver ? { resolver: io.resolver } : {}),
    ...(io.now ? { now: io.now } : {}),
  });
  if (check.broken) {
    io.stderr(`egress: internal error: the policy with the learned rules does not load (please report this):\n${renderText(check.broken.sources, check.broken.diagnostics)}`);
    return 1;
  }

  // Reading this host's own kernel log: what the rate limit kept out of it is flows learn cannot propose (the kernel counted them).
  const live = flags.journal || flags.kmsg ? await liveCounters(io, seams) : undefined;
  const logging = live?.kind === 'status' ? live.status.logging : undefined;
  if (flags.json) {
    const result = learnJson(flags.policy, learned, counts, check, items, !!flags.write && learned.rules.length > 0 && !check.stillDenied.length);
    writeResult(io, 'learn', { ok: !check.stillDenied.length, result: { ...result, ...(dnsCounts ? { dnsLog: dnsCounts } : {}), ...(logging ? { logging } : {}) }, diagnostics: diagnosticsJson(loaded) });
  }
  else if (logging?.notLogged)
    io.stderr(
      `egress: warning: ${logging.notLogged.toLocaleString('en-US')} of ${logging.denials.toLocaleString('en-US')} denials since the ruleset was loaded were not logged (rate limit ${logging.limit}): learn cannot propose those flows; raise log.rate (audit mode's default is 100/second) and learn again\n`,
    );

  if (check.stillDenied.length) {
    io.stderr(`egress: error: the learned rules would not admit ${check.stillDenied.length} of the flows they were learned from (hostnames resolving differently?); nothing written\n`);
    return 1;
  }
  if (flags.write && learned.rules.length) {
    writeInPlace(policyPath, merged);
    if (!flags.json) io.stderr(`egress: added ${learned.rules.length} allow rule${learned.rules.length === 1 ? '' : 's'} to ${flags.policy}; review them, then "egress replay" and apply\n`);
  }
  if (!flags.json) io.stdout(learnText(learned, items, counts, describeUser, !!flags.write));
  return 0;
}

/**
 * Replace the policy file's content where it really is (a policy that is a
 * link stays one: its target is rewritten), keeping its mode and owner: the
 * new file must not be more readable than the old, nor become root's (D4).
 */
function writeInPlace(path: string, text: string): void {
  const target = realpathSync(path);
  const st = statSync(target);
  writeFileAtomic(target, text, st.mode & 0o7777);
  chmodSync(target, st.mode & 0o7777);
  if (process.geteuid?.() === 0) chownSync(target, st.uid, st.gid);
}
