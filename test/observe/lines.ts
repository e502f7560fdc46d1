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

/*
 * Forwarded packets (SPEC §6): a container's, routed by the host from its
 * bridge br-test to the uplink up0, logged at the forward hook. IN= and OUT=
 * are both set, MAC= is the frame's (bridge's MAC, the container's, the
 * ethertype), the TTL/HOPLIMIT is already one less, and there is no socket,
 * so no UID=/GID=.
 */
export const FWD_TCP4 = 'IN=br-test OUT=up0 MAC=02:42:c0:a8:00:01:02:42:c6:33:64:02:08:00 SRC=198.51.100.2 DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=51234 DF PROTO=TCP SPT=43210 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 ';
export const FWD_UDP4 = 'IN=br-test OUT=up0 MAC=02:42:c0:a8:00:01:02:42:c6:33:64:03:08:00 SRC=198.51.100.3 DST=203.0.113.53 LEN=61 TOS=0x00 PREC=0x00 TTL=63 ID=7 DF PROTO=UDP SPT=40000 DPT=53 LEN=41 ';
export const FWD_TCP6 =
  'IN=br-test OUT=up0 MAC=02:42:c0:a8:00:01:02:42:c6:33:64:02:86:dd SRC=2001:0db8:0001:0000:0000:0000:0000:0002 DST=2001:0db8:0002:0000:0000:0000:0000:0009 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=123456 PROTO=TCP SPT=43211 DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0 ';
export const FWD_ICMP6 =
  'IN=br-test OUT=up0 MAC=02:42:c0:a8:00:01:02:42:c6:33:64:02:86:dd SRC=2001:0db8:0001:0000:0000:0000:0000:0002 DST=2001:0db8:0002:0000:0000:0000:0000:0009 LEN=104 TC=0 HOPLIMIT=63 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=77 SEQ=1 ';
/** Forwarded from an interface no source lists (a VM's tap). */
export const FWD_OTHER4 = 'IN=tap-vm1 OUT=up0 MAC=52:54:00:aa:bb:01:52:54:00:12:34:56:08:00 SRC=192.0.2.77 DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=99 DF PROTO=TCP SPT=50000 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 ';

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
