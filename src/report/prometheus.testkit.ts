import type { Status } from '../kernel/status.js';

/** What `egress status` read (kernel/status.ts), as the exporter takes it. */
export function sampleStatus(over: Partial<Status> = {}): Status {
  return {
    stateDir: '/var/lib/egress',
    applied: true,
    backend: 'nft',
    mode: 'enforce',
    default: 'reject',
    policyFile: '/etc/egress/policy.yaml',
    policyHash: 'sha256:0123',
    appliedAt: '2026-11-23T09:00:00.000Z',
    drift: false,
    interrupted: false,
    counters: [
      { rule: 'loopback', action: 'builtin', family: 'ipv4', packets: 3, bytes: 180 },
      { rule: 'loopback', action: 'builtin', family: 'ipv4', packets: 2, bytes: 120 },
      { rule: 'web', action: 'allow', family: 'ipv4', packets: 10, bytes: 1500 },
      { rule: 'web', action: 'allow', family: 'ipv6', packets: 4, bytes: 600 },
      { rule: 'smtp', action: 'deny', family: 'ipv4', packets: 7, bytes: 420 },
      { rule: 'web', action: 'allow', family: 'ipv4', scope: 'forward', packets: 1, bytes: 60 },
      { rule: 'reject', action: 'default', family: 'ipv4', packets: 9, bytes: 540 },
    ],
    policyOnDisk: { state: 'same' },
    ...over,
  };
}
