/**
 * The hostile-input campaign (issue 12): each attack runs a list of trials,
 * checks every one against SPEC's standard — a located error or a counted,
 * skipped line; never a stack trace, a hang, unbounded memory, a changed
 * live ruleset or a file written outside the state directory — and keeps
 * going after a failure, so the figures are real: trials tried, trials that
 * broke the standard. The test then fails naming every broken trial.
 *
 * With EGRESS_CAMPAIGN_TALLY=FILE set (scripts/campaign.sh sets it), each
 * attack also appends one JSON line {class, attack, trials, failures} to
 * FILE, from which the script prints the table per class. Without it, the
 * campaign is an ordinary part of the test suite.
 */
import { appendFileSync } from 'node:fs';
import fc from 'fast-check';

export interface Tallied {
  class: string;
  attack: string;
  trials: number;
  failures: number;
}

const describeError = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n').slice(0, 12).join('\n');

/**
 * Run `check` on every input of one attack. Failures are collected, not
 * thrown one by one; at the end the attack is tallied and, if any trial
 * failed, one error names them all (the first 20 in full).
 */
export async function attack<T>(cls: string, name: string, inputs: readonly T[], label: (t: T, i: number) => string, check: (t: T, i: number) => void | Promise<void>): Promise<void> {
  const failed: string[] = [];
  for (const [i, t] of inputs.entries()) {
    try {
      await check(t, i);
    } catch (e) {
      failed.push(`${label(t, i)}: ${describeError(e)}`);
    }
  }
  const tally: Tallied = { class: cls, attack: name, trials: inputs.length, failures: failed.length };
  const file = process.env.EGRESS_CAMPAIGN_TALLY;
  // An attack with nothing to try (e.g. no trial got as far as a loader) is not a row of the table.
  if (file && inputs.length) appendFileSync(file, JSON.stringify(tally) + '\n');
  if (failed.length) throw new Error(`${cls} / ${name}: ${failed.length} of ${inputs.length} trials broke the standard:\n- ${failed.slice(0, 20).join('\n- ')}${failed.length > 20 ? `\n… ${failed.length - 20} more` : ''}`);
}

/**
 * `n` generated inputs. The seed is fixed per run by EGRESS_CAMPAIGN_SEED
 * (default: random, printed with a failure through the label) so a failing
 * run can be repeated.
 */
/**
 * The full campaign (scripts/campaign.sh sets EGRESS_CAMPAIGN_FULL=1): every
 * combination and the long kill series. The test suite (and so CI, which has
 * 15 minutes for everything) runs a seeded part of the biggest attacks; the
 * seed is printed, so a part that failed can be run again whole.
 */
export const FULL = process.env.EGRESS_CAMPAIGN_FULL === '1';

export const SEED = Number(process.env.EGRESS_CAMPAIGN_SEED ?? Math.floor(Math.random() * 2 ** 31));
export function sample<T>(arb: fc.Arbitrary<T>, n: number, salt = 0): T[] {
  return fc.sample(arb, { numRuns: n, seed: SEED + salt });
}

/** What no output of egress may contain: a JavaScript stack trace or the internal-error banner. */
export function expectNoCrash(out: string): void {
  if (/\n\s+at .+\(.*:\d+:\d+\)|^\s+at .+:\d+:\d+$/m.test(out)) throw new Error(`stack trace in output:\n${out.slice(0, 600)}`);
  if (/internal error/i.test(out)) throw new Error(`internal error:\n${out.slice(0, 600)}`);
}
