// Address parsing and formatting, per address: egress's own parser and
// formatter (src/policy/address.ts) against the ipaddr.js calls they
// replaced (the baseline, run in the same process, interleaved, 7 rounds;
// medians). 100k IPv6 and 100k IPv4 addresses, as a 100k-destination apply
// parses them.
//   npm run --silent build && node bench/address.mjs
import ipaddr from 'ipaddr.js';
import { formatAddress, parseAddress } from '../dist/policy/address.js';

const N = 100_000;
const v6 = Array.from({ length: N }, (_, k) => `2001:db8:${((k * 7) & 0xffff).toString(16)}:${(k >> 4).toString(16)}::${((k * 13) & 0xffff).toString(16)}`);
const v4 = Array.from({ length: N }, (_, k) => `10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`);
const big = (bytes) => bytes.reduce((v, b) => (v << 8n) | BigInt(b), 0n);

/** The code before: ipaddr.js's validity check (which parses by throwing), then its parse. */
function parseBefore(text) {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return { family: 'ipv4', value: big(ipaddr.IPv4.parse(text).toByteArray()) };
  if (text.includes(':') && ipaddr.IPv6.isValid(text) && !text.includes('%')) return { family: 'ipv6', value: big(ipaddr.IPv6.parse(text).toByteArray()) };
  return undefined;
}
function formatBefore(v) {
  const bytes = [];
  for (let s = 120n; s >= 0n; s -= 8n) bytes.push(Number((v >> s) & 255n));
  return ipaddr.fromByteArray(bytes).toString();
}

const values = v6.map((t) => parseAddress(t).value);
const cases = {
  'parse IPv6': [() => v6.forEach(parseBefore), () => v6.forEach(parseAddress)],
  'parse IPv4': [() => v4.forEach(parseBefore), () => v4.forEach(parseAddress)],
  'format IPv6': [() => values.forEach(formatBefore), () => values.forEach((v) => formatAddress('ipv6', v))],
};
const time = (f) => {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / N;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log('per address, median of 7 interleaved rounds');
console.log('case          ipaddr.js (before)   egress (after)   after/before');
for (const [name, [before, after]] of Object.entries(cases)) {
  const b = [];
  const a = [];
  for (let r = 0; r < 7; r++) {
    b.push(time(before));
    a.push(time(after));
  }
  const mb = median(b);
  const ma = median(a);
  console.log(`${name.padEnd(14)}${`${(mb / 1000).toFixed(2)} µs`.padStart(18)}${`${(ma / 1000).toFixed(2)} µs`.padStart(17)}${(ma / mb).toFixed(3).padStart(15)}`);
}
