/**
 * netfilter LOG lines as the kernel writes them (captured from nf_log_syslog
 * on Linux 6.x: iptables LOG --log-uid and nft `log flags skuid` print the
 * same text), and builders for the carriers around them.
 */

/** IPv4 TCP SYN as www-data. */
export const TCP4 = 'IN= OUT=eth0 SRC=192.0.2.1 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=44257 DF PROTO=TCP SPT=57408 DPT=25 WINDOW=64240 RES=0x00 SYN URGP=0 UID=33 GID=33 ';
export const UDP4 = 'IN= OUT=eth0 SRC=192.0.2.1 DST=203.0.113.9 LEN=31 TOS=0x00 PREC=0x00 TTL=64 ID=19454 DF PROTO=UDP SPT=45089 DPT=53 LEN=11 UID=0 GID=0 ';
export const ICMP4 = 'IN= OUT=eth0 SRC=192.0.2.1 DST=203.0.113.10 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=4315 DF PROTO=ICMP TYPE=8 CODE=0 ID=31283 SEQ=1 UID=0 GID=0 ';
export const ICMP6 =
  'IN= OUT=eth0 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0099 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=81477 PROTO=ICMPv6 TYPE=128 CODE=0 ID=31284 SEQ=1 UID=0 GID=0 ';
export const TCP6 =
  'IN= OUT=eth0 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=2001:0db8:0000:0000:0000:0000:0000:0099 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=4 PROTO=TCP SPT=40000 DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0 UID=1001 GID=1001 ';
/** Neighbour solicitation: no socket, so no UID/GID. */
export const ND6 = 'IN= OUT=eth0 SRC=2001:0db8:0000:0000:0000:0000:0000:0001 DST=ff02:0000:0000:0000:0000:0001:ff00:0099 LEN=72 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=135 CODE=0 ';
/** A UDP packet logged without --log-uid. */
export const UDP4_NOUID = 'IN= OUT=eth0 SRC=192.0.2.1 DST=192.0.2.123 LEN=76 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=UDP SPT=123 DPT=123 LEN=56 ';
/** An outgoing ICMP error quoting the packet it is about: the quoted fields are not the packet's. */
export const ICMP4_ERR =
  'IN= OUT=eth0 SRC=192.0.2.1 DST=198.51.100.2 LEN=96 TOS=0x00 PREC=0xC0 TTL=64 ID=5 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.51.100.2 DST=192.0.2.1 LEN=68 TOS=0x00 PREC=0x00 TTL=63 ID=9 PROTO=UDP SPT=5353 DPT=40000 LEN=48 ] UID=0 GID=0 ';
/** An inbound packet (another LOG rule, e.g. UFW). */
export const INBOUND = 'IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.5 DST=192.0.2.1 LEN=40 TOS=0x00 PREC=0x00 TTL=50 ID=0 DF PROTO=TCP SPT=4444 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0 ';

/** RFC 3164 syslog line (kern.log), with the kernel's own stamp. */
export function syslog(msg: string, stamp = 'Nov 23 09:14:42', mono = '1738.733213'): string {
  return `${stamp} web1 kernel: [${mono.padStart(12)}] ${msg}`;
}

export function iso(msg: string, stamp = '2026-11-23T09:14:42.123456+01:00'): string {
  return `${stamp} web1 kernel: ${msg}`;
}

export function dmesg(msg: string, secs = '1738.733213'): string {
  return `[${secs.padStart(12)}] ${msg}`;
}

export function dmesgT(msg: string, stamp = 'Mon Nov 23 09:14:42 2026'): string {
  return `[${stamp}] ${msg}`;
}

export function kmsg(msg: string, seq = 345, usec = 1738426972): string {
  return `4,${seq},${usec},-;${msg}`;
}

export function journal(msg: string, realtimeUs = 1795000000000000): string {
  return JSON.stringify({ __REALTIME_TIMESTAMP: String(realtimeUs), _TRANSPORT: 'kernel', SYSLOG_IDENTIFIER: 'kernel', PRIORITY: '4', MESSAGE: msg });
}
