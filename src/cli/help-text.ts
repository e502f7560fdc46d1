/**
 * One example (or two) per command: shown after the command's --help, and
 * in the EXAMPLE paragraph of each command in egress(8) (share.ts). Every
 * visible command has an entry (test/cli/docs.test.ts); where a policy path
 * stands for a real host's, it is the default one, /etc/egress/policy.yaml.
 */
export interface Example {
  /** The command line as typed, `sudo` included where root is needed. */
  line: string;
  /** What it does, one short phrase. */
  does: string;
}

export const EXAMPLES: Readonly<Record<string, readonly Example[]>> = {
  init: [
    { line: 'sudo egress init', does: 'write the starter policy to /etc/egress/policy.yaml' },
    { line: 'egress init - | less', does: 'read the starter policy' },
  ],
  check: [
    { line: 'egress check', does: 'validate /etc/egress/policy.yaml' },
    { line: 'egress check -q new.yaml && echo valid', does: 'only errors and warnings, for scripts' },
  ],
  compile: [{ line: 'egress compile /etc/egress/policy.yaml --target nft', does: 'the nftables ruleset apply would load' }],
  explain: [{ line: 'egress explain --to 2001:db8::25 --port tcp/25 --user www-data', does: 'may www-data send mail to that address?' }],
  lab: [
    { line: 'sudo egress lab', does: 'rehearse /etc/egress/policy.yaml (or the starter policy while there is none)' },
    { line: 'sudo egress lab new.yaml --backend all -q', does: 'rehearse a candidate with nft and iptables, no progress lines' },
  ],
  plan: [
    { line: 'sudo egress plan', does: 'what applying /etc/egress/policy.yaml would change' },
    { line: 'sudo egress plan --markdown new.yaml > plan.md', does: 'the same as Markdown, for a pull request' },
  ],
  apply: [{ line: 'sudo egress apply --confirm 120 /etc/egress/policy.yaml', does: 'apply; rolled back in 2 minutes unless confirmed' }],
  confirm: [{ line: 'sudo egress confirm', does: 'keep the apply that awaits confirmation' }],
  rollback: [{ line: 'sudo egress rollback', does: 'back to the ruleset from before the last apply' }],
  remove: [{ line: 'sudo egress remove', does: 'take every rule of egress out' }],
  status: [{ line: 'sudo egress status --json', does: 'what is live, per-rule counters included' }],
  refresh: [{ line: 'sudo egress refresh --watch', does: 'keep the hostnames of /etc/egress/policy.yaml current' }],
  persist: [{ line: 'sudo egress persist', does: 'restore the confirmed policy at every boot' }],
  stats: [{ line: 'egress stats --journal --since 2h --policy /etc/egress/policy.yaml', does: 'denied connections of the last two hours' }],
  learn: [{ line: 'egress learn /var/log/kern.log --policy /etc/egress/policy.yaml', does: 'allow rules for what audit mode logged' }],
  replay: [{ line: 'egress replay new.yaml /var/log/kern.log --check', does: 'would the candidate have denied anything logged?' }],
  report: [{ line: 'egress report --journal --since 7d --output /tmp/egress.html', does: 'a week of denials and the policy as one HTML page' }],
  stale: [{ line: 'egress stale /etc/egress/policy.yaml --days 60', does: 'rules without a hit in 60 days' }],
};

/** The text after a command's --help: its examples, or nothing. */
export function examplesHelp(command: string): string {
  const xs = EXAMPLES[command];
  if (!xs?.length) return '';
  return `\nExample${xs.length > 1 ? 's' : ''}:\n${xs.map((x) => `  # ${x.does}\n  ${x.line}`).join('\n')}\n`;
}
