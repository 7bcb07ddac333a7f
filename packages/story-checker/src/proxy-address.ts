import dns, { type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { ProxyAddressError } from './errors.js';

/**
 * The one rule for proxy addresses (import time in the CLI, connect time in the checker): a
 * proxy must be a public Internet address unless ALLOW_PRIVATE_PROXIES=true. Everything is
 * judged on the parsed address, never on the text: IPv4 in any form the URL parser accepts
 * (`0x7f.1`, `2130706433`), IPv6 with IPv4 inside (mapped, compatible, NAT64, 6to4, Teredo),
 * and names in any case, with or without a trailing dot.
 */

/** Appended to every refusal: how to allow private proxies on purpose (tests, demos). */
export const ALLOW_PRIVATE_HINT = 'set ALLOW_PRIVATE_PROXIES=true to allow';

type Range = readonly [cidr: string, what: string];

/** Single addresses of cloud metadata services (checked before the ranges that hold them). */
const METADATA: ReadonlyMap<string, string> = new Map([
  ['169.254.169.254', 'link-local (cloud metadata)'],
  ['169.254.170.2', 'link-local (cloud metadata, AWS ECS)'],
  ['169.254.169.253', 'link-local (cloud DNS resolver)'],
  ['100.100.100.200', 'carrier-grade NAT (cloud metadata, Alibaba)'],
  ['192.0.0.192', 'IETF protocol assignment (cloud metadata, Oracle)'],
  ['fd00:ec2::254', 'unique-local (cloud metadata, AWS)'],
  ['fd00:ec2::253', 'unique-local (cloud DNS resolver, AWS)'],
]);

/** IPv4 special-purpose ranges (IANA registry, RFC 6890 and successors); first match wins. */
const V4_RANGES: readonly Range[] = [
  ['0.0.0.0/8', 'unspecified ("this network", 0.0.0.0/8)'],
  ['10.0.0.0/8', 'private (10.0.0.0/8)'],
  ['100.64.0.0/10', 'carrier-grade NAT (100.64.0.0/10)'],
  ['127.0.0.0/8', 'loopback (127.0.0.0/8)'],
  ['169.254.0.0/16', 'link-local (169.254.0.0/16)'],
  ['172.16.0.0/12', 'private (172.16.0.0/12)'],
  ['192.0.0.0/24', 'IETF protocol assignment (192.0.0.0/24)'],
  ['192.0.2.0/24', 'documentation (192.0.2.0/24)'],
  ['192.88.99.0/24', '6to4 relay anycast (deprecated, 192.88.99.0/24)'],
  ['192.168.0.0/16', 'private (192.168.0.0/16)'],
  ['198.18.0.0/15', 'benchmarking (198.18.0.0/15)'],
  ['198.51.100.0/24', 'documentation (198.51.100.0/24)'],
  ['203.0.113.0/24', 'documentation (203.0.113.0/24)'],
  ['224.0.0.0/4', 'multicast (224.0.0.0/4)'],
  ['255.255.255.255/32', 'broadcast'],
  ['240.0.0.0/4', 'reserved (240.0.0.0/4)'],
];

/** IPv6 ranges refused outright (those with IPv4 inside are handled before these). */
const V6_RANGES: readonly Range[] = [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'local-use NAT64 (64:ff9b:1::/48)'],
  ['100::/64', 'discard-only (100::/64)'],
  ['2001:2::/48', 'benchmarking (2001:2::/48)'],
  ['2001:db8::/32', 'documentation (2001:db8::/32)'],
  ['2001::/23', 'IETF protocol assignment (2001::/23)'],
  ['3fff::/20', 'documentation (3fff::/20)'],
  ['5f00::/16', 'segment routing (5f00::/16)'],
  ['fc00::/7', 'unique-local (fc00::/7)'],
  ['fe80::/10', 'link-local (fe80::/10)'],
  ['fec0::/10', 'site-local (deprecated, fec0::/10)'],
  ['ff00::/8', 'multicast (ff00::/8)'],
];

const parsedV4 = V4_RANGES.map(([c, w]) => [ipaddr.IPv4.parseCIDR(c), w] as const);
const parsedV6 = V6_RANGES.map(([c, w]) => [ipaddr.IPv6.parseCIDR(c), w] as const);
const GLOBAL_UNICAST = ipaddr.IPv6.parseCIDR('2000::/3');
const TEREDO = ipaddr.IPv6.parseCIDR('2001::/32');
const SIX_TO_FOUR = ipaddr.IPv6.parseCIDR('2002::/16');
const NAT64 = ipaddr.IPv6.parseCIDR('64:ff9b::/96');
/** ipaddr.js ranges that are globally reachable (or judged by their embedded IPv4 above). */
const LIB_PUBLIC = new Set(['unicast', 'as112', 'amt', 'as112v6', 'teredo', '6to4', 'rfc6052']);

function v4(bytes: number[]): ipaddr.IPv4 {
  return new ipaddr.IPv4(bytes);
}

function v4Kind(a: ipaddr.IPv4): string | null {
  const s = a.toString();
  const meta = METADATA.get(s);
  if (meta) return meta;
  for (const [range, what] of parsedV4) if (a.match(range)) return what;
  const lib = a.range();
  return LIB_PUBLIC.has(lib) ? null : `special-purpose (${lib})`;
}

/** An IPv6 address with an IPv4 address inside: judged by the IPv4 one. */
function embedded(how: string, inner: ipaddr.IPv4): string | null {
  const k = v4Kind(inner);
  return k ? `${how} ${inner.toString()}, which is ${k}` : null;
}

function v6Kind(a: ipaddr.IPv6): string | null {
  const s = a.toString();
  const meta = METADATA.get(s);
  if (meta) return meta;
  const p = a.parts;
  const bytes = a.toByteArray();
  const last4 = bytes.slice(12, 16);
  // ::ffff:a.b.c.d (mapped): the kernel connects to the IPv4 address.
  if (p[0] === 0 && p[1] === 0 && p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0xffff)
    return embedded('IPv4-mapped', v4(last4));
  // ::a.b.c.d (IPv4-compatible, deprecated by RFC 4291); :: and ::1 are listed below.
  if (p.slice(0, 6).every((x) => x === 0) && (p[6] !== 0 || p[7]! > 1))
    return embedded('IPv4-compatible', v4(last4)) ?? 'IPv4-compatible (deprecated, ::/96)';
  if (a.match(NAT64)) return embedded('NAT64 for', v4(last4));
  if (a.match(SIX_TO_FOUR)) return embedded('6to4 for', v4(bytes.slice(2, 6)));
  if (a.match(TEREDO)) {
    const server = embedded('Teredo via server', v4(bytes.slice(4, 8)));
    return server ?? embedded('Teredo for', v4(last4.map((b) => b ^ 0xff)));
  }
  for (const [range, what] of parsedV6) if (a.match(range)) return what;
  if (!a.match(GLOBAL_UNICAST)) return 'reserved (outside 2000::/3 global unicast)';
  const lib = a.range();
  return LIB_PUBLIC.has(lib) ? null : `special-purpose (${lib})`;
}

/**
 * What an IP address literal is when it is not a public unicast address ("loopback
 * (127.0.0.0/8)", "link-local (cloud metadata)"), or null when it is public. Accepts IPv4
 * dotted quads and IPv6 with or without brackets; anything else is not an address (null).
 */
export function specialAddressKind(address: string): string | null {
  const a = address.replace(/^\[(.*)\]$/, '$1');
  const v = isIP(a);
  if (v === 4) return v4Kind(ipaddr.IPv4.parse(a));
  if (v === 6) return v6Kind(ipaddr.IPv6.parse(a));
  return null;
}

/** What a name is that is refused by name alone (besides {@link LOCAL_NAMES}). */
const NAME_KINDS = {
  metadata: 'a cloud metadata name',
  singleLabel: 'a single-label name (resolves only on a local network)',
} as const;

/**
 * Every "what" of a refusal ("loopback (127.0.0.0/8)", "IPv4-mapped …, which is …"), `…`
 * standing for an address: for docs/input.md, whose table a test keeps complete.
 */
export function addressKinds(): string[] {
  return [
    ...METADATA.values(),
    ...V4_RANGES.map(([, w]) => w),
    ...V6_RANGES.map(([, w]) => w),
    ...LOCAL_NAMES.map(([, w]) => w),
    ...Object.values(NAME_KINDS),
    'IPv4-mapped …, which is …',
    'IPv4-compatible …, which is …',
    'IPv4-compatible (deprecated, ::/96)',
    'NAT64 for …, which is …',
    '6to4 for …, which is …',
    'Teredo via server …, which is …',
    'Teredo for …, which is …',
    'reserved (outside 2000::/3 global unicast)',
    'special-purpose (…)',
  ];
}

/** Reserved or local-only DNS names (RFC 6761, 6762, 8375, ICANN .internal). */
const LOCAL_NAMES: readonly Range[] = [
  ['localhost', 'loopback (a localhost name)'],
  ['local', 'link-local (an mDNS .local name)'],
  ['internal', 'private (a .internal name)'],
  ['localdomain', 'private (a .localdomain name)'],
  ['home.arpa', 'private (a home.arpa name)'],
];

/**
 * Puts a host into the form the URL parser gives it: lower case, IPv4 in dotted-quad form
 * (`0x7f.1` → `127.0.0.1`), IPv6 compressed and without brackets. Names keep a trailing dot.
 * Returns the input (lower-cased) when it is not a valid host at all.
 */
export function canonicalHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  try {
    const parsed = new URL(`http://${isIP(h) === 6 ? `[${h}]` : h}/`).hostname;
    return parsed.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return h;
  }
}

/**
 * Why a proxy host (name or address, as written or as the URL parser gives it) is not a public
 * Internet host, as "<host> is <what>"; null when it is acceptable. Names are judged by name
 * only (their addresses are checked at connect time, {@link guardedLookup}).
 */
export function hostProblem(host: string): string | null {
  const h = canonicalHost(host);
  const ipKind = specialAddressKind(h);
  if (ipKind) return `${h} is ${ipKind}`;
  if (isIP(h)) return null;
  const name = h.replace(/\.$/, '');
  if (name === '') return `"${host}" is not a host name`;
  if (name === 'metadata.google.internal' || name === 'metadata')
    return `${name} is ${NAME_KINDS.metadata}`;
  for (const [suffix, what] of LOCAL_NAMES)
    if (name === suffix || name.endsWith(`.${suffix}`)) return `${name} is ${what}`;
  if (!name.includes('.')) return `${name} is ${NAME_KINDS.singleLabel}`;
  return null;
}

/** A DNS lookup function as net.connect and http.request take it. */
export type LookupFunction = (
  hostname: string,
  options: LookupOptions,
  callback: (
    err: NodeJS.ErrnoException | null,
    address: string | LookupAddress[],
    family?: number,
  ) => void,
) => void;

/**
 * A DNS lookup for connections to proxies: resolves with `base` (default dns.lookup) and
 * refuses, with a {@link ProxyAddressError} (code `proxy_address_refused`), a name that is
 * local by itself or that resolves to any address {@link specialAddressKind} names — so a
 * public-looking name pointing at 127.0.0.1 or 169.254.169.254 is never connected to. IP
 * literals (which net.connect does not look up) are checked by {@link proxyUrlProblem} first;
 * bracketed IPv6 literals that reach here are checked and returned without DNS.
 */
export function guardedLookup(
  base: LookupFunction = dns.lookup as unknown as LookupFunction,
): LookupFunction {
  return (hostname, options, callback) => {
    const refuse = (why: string) =>
      callback(
        new ProxyAddressError(`proxy address refused: ${why} (${ALLOW_PRIVATE_HINT})`),
        options.all ? [] : '',
      );
    const named = hostProblem(hostname);
    if (named) return refuse(named);
    const literal = canonicalHost(hostname);
    const family = isIP(literal);
    if (family) {
      if (options.all) return callback(null, [{ address: literal, family }]);
      return callback(null, literal, family);
    }
    base(hostname, options, (err, address, fam) => {
      if (err) return callback(err, address, fam);
      const list = typeof address === 'string' ? [{ address, family: fam ?? 4 }] : address;
      for (const a of list) {
        const kind = specialAddressKind(a.address);
        if (kind) return refuse(`${hostname} resolves to ${a.address}, which is ${kind}`);
      }
      callback(null, address, fam);
    });
  };
}

/**
 * Why a proxy URL must not be used (its host is not a public Internet host), or null. Used by
 * `storycheck proxies import` and before every connection to a proxy.
 */
export function proxyUrlProblem(url: string | URL): string | null {
  const u = typeof url === 'string' ? new URL(url) : url;
  return hostProblem(u.hostname);
}
