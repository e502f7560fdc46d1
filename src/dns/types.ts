/**
 * The forwarder's contract with the policy side (which produces a
 * `ForwarderConfig` from `dns:` and the rules' hostnames) and with the life
 * cycle (which runs it). Nothing here does I/O.
 */

export interface Endpoint {
  address: string;
  port: number;
}

export interface ForwarderConfig {
  /** Where the kernel redirects local DNS, e.g. 127.0.0.153:53 and [::1]:53. UDP and TCP on each. */
  listen: Endpoint[];
  /**
   * Forward sources' DNS (SPEC §6): the kernel redirects it to the address
   * of the interface it came in on, at `port`; the forwarder listens there
   * too, on every address of the interfaces matching `globs` (a trailing
   * "*" matches a prefix), and follows them as they come and go.
   */
  interfaces?: { globs: string[]; port: number };
  /** Tried in order; from `dns.upstream`, else the system's servers (kernel/forwarder.ts `forwarderUpstream`). Never a loopback stub. */
  upstream: Endpoint[];
  /** Element lifetime = max(minLifetimeSec, TTL + graceSec). */
  graceSec: number;
  minLifetimeSec: number;
  /** Longest wait for the kernel commit of an answer's addresses; later → SERVFAIL, never a late answer. */
  holdMs: number;
  names: DnsName[];
  /** The nft table the sets live in, e.g. 'inet egress'. */
  table: string;
}

export interface DnsName {
  /** Lowercase, no trailing dot: exact "deb.debian.org" or wildcard "*.cdn.example.com" (one or more labels, never the bare domain). */
  pattern: string;
  /** deny → the forwarder answers REFUSED and publishes nothing. */
  action: 'allow' | 'deny';
  /** Policy rule name, for logs and counters. */
  rule: string;
  /** nft set names in `table` (declared with `flags timeout`) that answered A / AAAA go into. */
  sets: { ipv4?: string; ipv6?: string };
}

/** One address to put into one kernel set, for `timeoutSec` seconds from the commit. */
export interface Element {
  set: string;
  family: 'ipv4' | 'ipv6';
  /** Canonical text form (as `net.isIP` accepts and nft parses: never a hostname). */
  address: string;
  timeoutSec: number;
}

/**
 * Where published addresses go. `publish` resolves when the kernel has
 * committed every element (so a connect to them is admitted), and rejects
 * when it cannot say so: the forwarder then answers SERVFAIL.
 */
export interface ElementWriter {
  publish(elements: readonly Element[]): Promise<void>;
  close(): Promise<void>;
  /**
   * How many milliseconds from now `address` surely stays in `set`, as far
   * as this writer itself confirmed it (0 when it does not know). Lets the
   * forwarder release an answer without holding it (forwarder.ts, "fast
   * path"). A writer without it never gives that.
   */
  remainingMs?(set: string, address: string): number;
}

export interface Counters {
  /** Queries received (UDP datagrams and TCP messages that parsed). */
  queries: number;
  /** Answers sent that came from upstream (including NODATA for stripped HTTPS/SVCB and TC=1 to UDP clients). */
  answered: number;
  /** REFUSED answers: names that a deny rule names. */
  refused: number;
  /** SERVFAIL answers, whatever the cause (upstream, writer, hold timeout). */
  servfail: number;
  /** Answers whose kernel commit did not come within holdMs (each also a SERVFAIL). */
  holdTimeouts: number;
  /** Publishes the writer refused or could not do (each also a SERVFAIL). */
  publishFailures: number;
  /** Packets dropped because they were not a DNS query we could read. */
  malformed: number;
  /** Elements confirmed in the kernel (an address in two sets counts twice). */
  published: number;
  /** Upstream attempts that timed out, failed, or sent something that was not the answer. */
  upstreamErrors: number;
  /** Answers retried over TCP upstream because the UDP answer had TC=1. */
  upstreamTcpRetries: number;
  /** Answers sent with TC=1 because they did not fit the client's UDP size. */
  truncated: number;
  /** Addresses left out of an answer (and not published) because the per-family cap was reached. */
  capped: number;
  /** HTTPS/SVCB queries for named names answered with NODATA. */
  strippedHttps: number;
  /** Loopback, link-local, multicast… addresses taken out of named answers (never published). */
  special: number;
  /** Named answers released at once because every address was surely live long enough (the refresh followed in the background). */
  fastAnswers: number;
  /** Background refreshes after such an answer that the writer refused or could not do (the answer had gone; its addresses stay for what they had left). */
  refreshFailures: number;
}

export function zeroCounters(): Counters {
  return {
    queries: 0,
    answered: 0,
    refused: 0,
    servfail: 0,
    holdTimeouts: 0,
    publishFailures: 0,
    malformed: 0,
    published: 0,
    upstreamErrors: 0,
    upstreamTcpRetries: 0,
    truncated: 0,
    capped: 0,
    strippedHttps: 0,
    special: 0,
    fastAnswers: 0,
    refreshFailures: 0,
  };
}

/**
 * One structured log record per published answer (the sink turns it into a
 * JSON line). `uid` is the asking socket's owner when the forwarder could
 * find it (local clients only).
 */
export interface PublishRecord {
  time: string;
  event: 'dns-publish';
  name: string;
  qtype: string;
  rules: string[];
  sets: string[];
  addresses: string[];
  /** Smallest TTL among the published address records, seconds. */
  ttl: number;
  /** Lifetime given to the elements, seconds (the longest, when TTLs differ). */
  lifetime: number;
  proto: 'udp' | 'tcp';
  uid?: number;
}

export interface RefusedRecord {
  time: string;
  event: 'dns-refused';
  name: string;
  qtype: string;
  rules: string[];
  proto: 'udp' | 'tcp';
}

/**
 * One record per A/AAAA answer for a name no rule names (forwarded as it
 * came, nothing published): what `stats` counts per name and `learn` turns a
 * denied address back into a name with. Written after the answer is sent.
 * `addresses` are those of the name and its CNAME chain (may be empty:
 * NXDOMAIN, NODATA); `ttl` is their smallest TTL (absent when none).
 */
export interface AnswerRecord {
  time: string;
  event: 'dns-answer';
  name: string;
  qtype: string;
  addresses: string[];
  ttl?: number;
  proto: 'udp' | 'tcp';
  uid?: number;
}

export type ForwarderRecord = PublishRecord | RefusedRecord | AnswerRecord;
