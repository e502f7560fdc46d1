export interface ForwarderConfig {
  listen: { address: string; port: number }[];
  upstream: { address: string; port: number }[];
  graceSec: number;
  minLifetimeSec: number;
  holdMs: number;
  names: DnsName[];
  table: string;
}
export interface DnsName {
  pattern: string;
  action: 'allow' | 'deny';
  rule: string;
  sets: { ipv4?: string; ipv6?: string };
}
