import type { Span } from './source.js';

/**
 * Stable, user-visible diagnostic codes. They appear in `--json` and tests
 * assert on them, so never rename one; add new ones instead.
 */
export const ERROR_CODES = [
  'io-error',
  'empty-file',
  'binary-file',
  'yaml-syntax',
  'bad-type',
  'unknown-key',
  'missing-key',
  'bad-value',
  'bad-version',
  'bad-rule-name',
  'duplicate-rule-name',
  'bad-address',
  'bad-port',
  'bad-protocol',
  'bad-icmp',
  'bad-user',
  'bad-interface',
  'bad-date',
  'bad-log-prefix',
  'bad-log-rate',
  'unknown-set',
  'unused-set',
  'set-cycle',
  'bad-set-name',
  'except-on-allow',
  'family-conflict',
  'unreadable-file',
  'too-many-errors',
  'unsupported-selector',
  'kernel-rejected',
  'ssh-lockout',
  'bad-flow',
  'bad-hostname',
  'bad-wildcard',
  'wildcard-needs-proxy',
  'wildcard-in-except',
  'bad-upstream',
  'bad-duration',
  'duration-out-of-range',
  'reason-required',
  'bad-source-name',
  'bad-source-network',
  'empty-source',
  'unknown-source',
] as const;

export const WARNING_CODES = [
  'missing-reason',
  'host-bits-set',
  'expired-rule',
  'expiring-rule',
  'redundant-rule',
  'dead-rule',
  'dns-anywhere',
  'builtin-disabled',
  'blocks-nothing',
  'log-prefix-long',
  'iptables-linear',
  'unresolved-host',
  'unknown-user',
  'empty-rule',
  'ssh-lockout',
  'family-uncovered',
  'hostname-rules-advisory',
  'deny-name-refused',
  'dns-rule-overridden',
  'dns-settings-unused',
  'no-dns-upstream',
  'special-address',
  'no-sources',
  'forwarding-off',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];
export type WarningCode = (typeof WARNING_CODES)[number];
export type DiagCode = ErrorCode | WarningCode;

export interface Note {
  message: string;
  span?: Span;
}

export interface Diagnostic {
  severity: 'error' | 'warning';
  code: DiagCode;
  message: string;
  span?: Span;
  notes?: Note[];
  hint?: string;
  /** false: print no excerpt of the source line (text that is not the policy's own, e.g. a foreign line in a set file). */
  excerpt?: false;
}

/** Stages accumulate diagnostics instead of throwing; `value` is absent when errors made it meaningless. */
export interface Result<T> {
  value?: T;
  diagnostics: Diagnostic[];
}

export function error(code: ErrorCode, message: string, span?: Span, extra: Partial<Diagnostic> = {}): Diagnostic {
  return { severity: 'error', code, message, ...(span ? { span } : {}), ...extra };
}

export function warning(code: WarningCode, message: string, span?: Span, extra: Partial<Diagnostic> = {}): Diagnostic {
  return { severity: 'warning', code, message, ...(span ? { span } : {}), ...extra };
}

export function hasErrors(ds: readonly Diagnostic[]): boolean {
  return ds.some((d) => d.severity === 'error');
}

/** Control characters (terminal escapes among them) and bidi overrides: what a terminal must never be handed raw. */
const INVISIBLE = /[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** `s` with every control character and bidi override written as \xHH or \uHHHH. */
export function visible(s: string): string {
  return s.replace(INVISIBLE, (c) => {
    const n = c.charCodeAt(0);
    return n < 0x100 ? '\\x' + n.toString(16).padStart(2, '0') : '\\u' + n.toString(16).padStart(4, '0');
  });
}

/** Quote a user value in a message: `"…"`, with control characters and bidi overrides made visible. */
export function q(s: string): string {
  return '"' + visible(s.replace(/[\\"]/g, (c) => '\\' + c)) + '"';
}

export function assertNever(x: never): never {
  throw new Error(`unexpected kind: ${JSON.stringify(x)}`);
}

/** Order by file, then position, errors before warnings at the same place: stable output. */
export function sortDiagnostics(ds: Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) => {
    const fa = a.span?.file ?? '';
    const fb = b.span?.file ?? '';
    if (fa !== fb) return fa < fb ? -1 : 1;
    const sa = a.span?.start ?? -1;
    const sb = b.span?.start ?? -1;
    if (sa !== sb) return sa - sb;
    if (a.severity !== b.severity) return a.severity === 'error' ? -1 : 1;
    return a.message < b.message ? -1 : a.message > b.message ? 1 : 0;
  });
}

/** Errors are capped (nftables' parser_max_errors); warnings are not. */
export const MAX_ERRORS = 20;
