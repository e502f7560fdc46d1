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
import { silenced, writeJson, type PolicyFlags } from '../shared.js';

export interface LabFlags extends PolicyFlags {
  backend?: string;
  timeout?: string;
}

export const STARTER_NAME = '(starter policy)';

export async function labCommand(io: Io, file: string | undefined, flags: LabFlags, execer: Execer = realExecer(), uid = process.getuid?.()): Promise<number> {
  const backend = flags.backend ?? 'nft';
  const targets: LinuxTarget[] = backend === 'all' ? [...LINUX_TARGETS] : (LINUX_TARGETS as readonly string[]).includes(backend) ? [backend as LinuxTarget] : [];
  if (!targets.length) throw new UsageError(`--backend must be nft, iptables or all, not ${JSON.stringify(backend)}`);
  const timeoutMs = flags.timeout === undefined ? undefined : Number(flags.timeout);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs >= 50 && timeoutMs <= 10_000)) throw new UsageError('--timeout must be a whole number of milliseconds from 50 to 10000');

  if (uid !== undefined && uid !== 0)
    throw new CommandError('lab needs root: it creates network namespaces and loads rulesets into them (your own firewall is never touched); run it with sudo');
  const problems = await preflight(execer);
  if (problems.length) throw new CommandError(`lab cannot run here: ${problems.join('; ')}`);

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
    if (flags.json) writeJson(io, { file: name, ok: false, diagnostics: toJson(loaded.sources, loaded.diagnostics) });
    return 1;
  }

  const progress = (line: string) => io.stderr(`lab: ${line}\n`);
  const r = await runLab(loaded, accounts, identities, { execer, targets, progress, hosts, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
  const report = { ...r, hosts, identities };
  if (flags.json) writeJson(io, { ...labJson(name, report, loaded.sources), diagnostics: toJson(loaded.sources, loaded.diagnostics) });
  else io.stdout(renderLabText(name, report, loaded.sources));
  return labOk(report) ? 0 : 1;
}
