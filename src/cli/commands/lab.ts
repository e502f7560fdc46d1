import { resolve as resolvePath } from 'node:path';
import { LINUX_TARGETS, type LinuxTarget } from '../../backends/types.js';
import { hasErrors } from '../../diag/diagnostic.js';
import { renderText, toJson } from '../../diag/render.js';
import { realExecer, type Execer } from '../../kernel/exec.js';
import { preflight } from '../../kernel/netns.js';
import { openPolicy } from '../../index.js';
import { loadForLab, runLab } from '../../lab/lab.js';
import { labJson, labOk, renderLabText } from '../../report/lab.js';
import { STARTER_POLICY } from '../../policy/starter.js';
import { CommandError, UsageError, type Io } from '../io.js';
import { defaultPolicyOf, missingDefault, present } from '../policy-path.js';
import { writeResult } from '../envelope.js';
import { silenced, type PolicyFlags } from '../shared.js';

export interface LabFlags extends PolicyFlags {
  backend?: string;
  timeout?: string;
  /** No progress lines. */
  quiet?: boolean;
  /** Every "not probed" entry, not grouped. */
  verbose?: boolean;
}

export const STARTER_NAME = '(starter policy)';

/**
 * Which policy `lab` rehearses: the argument; else the default policy when
 * it exists ($EGRESS_POLICY must: it was asked for); else the starter policy,
 * so `sudo egress lab` shows what egress does on a host with no policy yet.
 * `said` tells the user which it took, and why.
 */
export function labPolicy(io: Io, file: string | undefined): { file?: string; said: string } {
  if (file !== undefined) return { file, said: `rehearsing ${file === '-' ? 'the policy on standard input' : file}` };
  const d = defaultPolicyOf(io);
  if (present(d.path)) return { file: d.path, said: `rehearsing ${d.path}, the default policy${d.from === 'EGRESS_POLICY' ? ' (EGRESS_POLICY)' : ''}; name another as the argument` };
  if (d.from === 'EGRESS_POLICY') throw new CommandError(missingDefault(d));
  return { said: `rehearsing the starter policy of "egress init": there is no ${d.path}; name a policy file as the argument to rehearse it` };
}

export async function labCommand(io: Io, given: string | undefined, flags: LabFlags, execer: Execer = realExecer(), uid = io.uid ?? process.getuid?.()): Promise<number> {
  const backend = flags.backend ?? 'nft';
  const targets: LinuxTarget[] = backend === 'all' ? [...LINUX_TARGETS] : (LINUX_TARGETS as readonly string[]).includes(backend) ? [backend as LinuxTarget] : [];
  if (!targets.length) throw new UsageError(`--backend must be nft, iptables or all, not ${JSON.stringify(backend)}`);
  const timeoutMs = flags.timeout === undefined ? undefined : Number(flags.timeout);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs >= 50 && timeoutMs <= 10_000)) throw new UsageError('--timeout must be a whole number of milliseconds from 50 to 10000');
  const { file, said } = labPolicy(io, given);
  const progress = flags.quiet ? () => {} : (line: string) => io.stderr(`lab: ${line}\n`);

  if (uid !== undefined && uid !== 0)
    throw new CommandError('lab needs root: it creates network namespaces and loads rulesets into them (your own firewall is never touched); run it with sudo');
  const problems = await preflight(execer);
  if (problems.length) throw new CommandError(`lab cannot run here: ${problems.join('; ')}`);

  progress(said);
  let name = STARTER_NAME;
  let text = STARTER_POLICY;
  let baseDir = io.cwd;
  if (file !== undefined) {
    name = file;
    if (file === '-') text = await (io.stdin?.() ?? Promise.resolve(''));
    else {
      const opened = await openPolicy(resolvePath(io.cwd, file), file);
      if (!opened.value) throw new CommandError(opened.diagnostics[0]!.message);
      ({ text, baseDir } = opened.value);
    }
  }

  const { loaded, hosts, identities, accounts } = await loadForLab(name, text, { baseDir, ...(io.resolver ? { accounts: await io.resolver.accounts() } : {}) });
  loaded.diagnostics = silenced(loaded.diagnostics, flags.silence);
  if (!flags.json && loaded.diagnostics.length) io.stderr(renderText(loaded.sources, loaded.diagnostics));
  if (hasErrors(loaded.diagnostics) || !loaded.ir) {
    if (flags.json) writeResult(io, 'lab', { ok: false, result: null, diagnostics: toJson(loaded.sources, loaded.diagnostics) });
    return 1;
  }

  const r = await runLab(loaded, accounts, identities, { execer, targets, progress, hosts, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  const report = { ...r, hosts, identities };
  if (flags.json) writeResult(io, 'lab', { ok: labOk(report), result: labJson(name, report, loaded.sources), diagnostics: toJson(loaded.sources, loaded.diagnostics) });
  else io.stdout(renderLabText(name, report, loaded.sources, { verbose: !!flags.verbose, ...(io.columns ? { width: io.columns } : {}) }));
  return labOk(report) ? 0 : 1;
}
