import fc from 'fast-check';
import { parseProxyLine } from '../src/commands/pool.js';

/**
 * Property tests of `proxies import`'s address rule over every textual form the WHATWG URL
 * parser accepts for a host: IPv4 as dotted decimal, one number, hex, octal, 2- and 3-part
 * forms; IPv6 full, compressed, upper case, with IPv4 inside (mapped, compatible, NAT64,
 * 6to4); names in any case with a trailing dot. The special-purpose ranges below are written
 * from the IANA registries (RFC 6890 and successors), not from the code under test.
 */

const V4_SPECIAL: Array<[string, number]> = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];
/** First octets with nothing special-purpose in them. */
const V4_PUBLIC_FIRST = [1, 2, 8, 9, 23, 31, 45, 51, 62, 77, 81, 93, 104, 128, 151, 185, 212, 223];

const V6_SPECIAL: Array<[number[], number]> = [
  [[0, 0, 0, 0, 0, 0, 0, 1], 128], // loopback
  [[0, 0, 0, 0, 0, 0, 0, 0], 128], // unspecified
  [[0xfe80], 10], // link-local
  [[0xfc00], 7], // unique-local
  [[0xff00], 8], // multicast
  [[0xfec0], 10], // site-local
  [[0x2001, 0xdb8], 32], // documentation
  [[0x3fff], 20], // documentation (RFC 9637)
  [[0x2001, 0x2, 0], 48], // benchmarking
  [[0x100, 0, 0, 0], 64], // discard-only
  [[0x64, 0xff9b, 0x1], 48], // local-use NAT64
  [[0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128], // AWS metadata
];

const ip4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const parseV4 = (s: string) => s.split('.').reduce((a, b) => a * 256 + Number(b), 0);

const v4InRange = ([base, bits]: [string, number]) =>
  fc.integer({ min: 0, max: 2 ** (32 - bits) - 1 }).map((off) => (parseV4(base) + off) >>> 0);
const specialV4 = fc.oneof(
  ...V4_SPECIAL.map(v4InRange),
  fc.constantFrom(0x7f000001, 0xa9fea9fe, 0xffffffff, 0x64646464 + 100), // 100.100.100.200
);
const publicV4 = fc
  .tuple(fc.constantFrom(...V4_PUBLIC_FIRST), fc.integer({ min: 0, max: 2 ** 24 - 1 }))
  .map(([a, rest]) => ((a << 24) | rest) >>> 0);

const hexCase = (s: string, upper: boolean) => (upper ? s.toUpperCase() : s);

/** Every way the URL parser reads an IPv4 address (WHATWG "IPv4 parser"). */
const v4Text = (n: number) =>
  fc.tuple(fc.integer({ min: 0, max: 7 }), fc.boolean(), fc.boolean()).map(([form, up, dot]) => {
    const [a, b, c, d] = ip4(n) as [number, number, number, number];
    const hex = (x: number) => hexCase(`0x${x.toString(16)}`, up);
    const oct = (x: number) => `0${x.toString(8)}`;
    const text = [
      `${a}.${b}.${c}.${d}`,
      String(n),
      hex(n),
      [a, b, c, d].map(hex).join('.'),
      [a, b, c, d].map(oct).join('.'),
      `${a}.${b}.${(c << 8) | d}`,
      `${a}.${(b << 16) | (c << 8) | d}`,
      `${hex(a)}.${oct(b)}.${c}.${hex(d)}`,
    ][form]!;
    return dot ? `${text}.` : text;
  });

/** IPv6 forms with an IPv4 address inside, bracketed. */
const v4InV6Text = (n: number, mappedOnly = false) =>
  fc.tuple(fc.integer({ min: 0, max: mappedOnly ? 2 : 5 }), fc.boolean()).map(([form, up]) => {
    const [a, b, c, d] = ip4(n) as [number, number, number, number];
    const hi = ((a << 8) | b).toString(16);
    const lo = ((c << 8) | d).toString(16);
    const text = [
      `::ffff:${a}.${b}.${c}.${d}`,
      `::ffff:${hi}:${lo}`,
      `0:0:0:0:0:ffff:${a}.${b}.${c}.${d}`,
      `::${a}.${b}.${c}.${d}`, // IPv4-compatible
      `64:ff9b::${hi}:${lo}`, // NAT64
      `2002:${hi}:${lo}::1`, // 6to4
    ][form]!;
    return `[${hexCase(text, up)}]`;
  });

const v6InRange = ([prefix, bits]: [number[], number]) =>
  fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }),
      fc.boolean(),
      fc.boolean(),
    )
    .map(([rand, up, compress]) => {
      const parts = rand.map((r, i) => {
        const keep = Math.max(0, Math.min(16, bits - 16 * i)); // prefix bits in this hextet
        const p = prefix[i] ?? 0;
        const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
        return (p & mask) | (r & ~mask & 0xffff);
      });
      if (compress) parts[5] = parts[4] = 0;
      let text = parts.map((p) => p.toString(16)).join(':');
      if (compress)
        text = text
          .replace(/(^|:)0:0(:|$)/, '::')
          .replace(/^::?(?=[^:])/, (m) => (m === ':' ? '' : m));
      return `[${hexCase(text, up)}]`;
    });
const specialV6 = fc.oneof(...V6_SPECIAL.map(v6InRange));
const publicV6 = fc
  .tuple(
    fc.integer({ min: 0x2400, max: 0x2dff }),
    fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 7, maxLength: 7 }),
  )
  .map(([first, rest]) => `[${[first, ...rest].map((p) => p.toString(16)).join(':')}]`);

const randomCase = (s: string) =>
  fc
    .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
    .map((ups) => [...s].map((ch, i) => (ups[i] ? ch.toUpperCase() : ch)).join(''));
const label = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/);
const localName = fc
  .tuple(
    fc.constantFrom('localhost', 'local', 'internal', 'localdomain', 'home.arpa'),
    fc.array(label, { maxLength: 2 }),
    fc.boolean(),
  )
  .chain(([suffix, labels, dot]) => randomCase([...labels, suffix].join('.') + (dot ? '.' : '')));
const publicName = fc
  .tuple(
    fc.array(label, { minLength: 1, maxLength: 3 }),
    fc.constantFrom('com', 'net', 'org', 'io'),
  )
  .map(([labels, tld]) => [...labels, tld].join('.'));

const scheme = fc.constantFrom('http', 'https', 'socks5');
const port = fc.oneof(
  fc.constantFrom(80, 443, 1080, 3128, 8080),
  fc.integer({ min: 1, max: 65535 }),
);
const userinfo = fc.constantFrom('', 'user:CANARYpw@', 'u%40x:p%3Aw@');
const url = (host: fc.Arbitrary<string>) =>
  fc.tuple(scheme, userinfo, host, port).map(([s, u, h, p]) => `${s}://${u}${h}:${p}`);

const specialHost = fc.oneof(
  specialV4.chain((n) => v4Text(n)),
  specialV4.chain((n) => v4InV6Text(n)),
  specialV6,
  localName,
);
const publicHost = fc.oneof(
  publicV4.chain((n) => v4Text(n)),
  publicV4.chain((n) => v4InV6Text(n, true)),
  publicV6,
  publicName,
);

const HINT = /\(set ALLOW_PRIVATE_PROXIES=true to allow\)$/;

describe('proxies import: the address rule over generated proxy URLs', () => {
  it('never accepts a special-purpose address or local name without ALLOW_PRIVATE_PROXIES', () => {
    fc.assert(
      fc.property(url(specialHost), (text) => {
        expect(() => new URL(text)).not.toThrow(); // the generator writes only valid URLs
        let message = '';
        try {
          parseProxyLine(text, false);
        } catch (e) {
          message = (e as Error).message;
        }
        expect(message).toMatch(HINT); // refused for its address, never "no port"
        expect(message).not.toContain('CANARY');
        // With the flag the same line is accepted: the address was the only reason.
        expect(() => parseProxyLine(text, true)).not.toThrow();
      }),
      { numRuns: 2_000 },
    );
  });

  it('accepts public addresses and names in every form', () => {
    fc.assert(
      fc.property(url(publicHost), (text) => {
        const p = parseProxyLine(text, false);
        expect(p.url).not.toContain('CANARY');
      }),
      { numRuns: 1_000 },
    );
  });

  it.each([
    [
      'http://[::ffff:169.254.169.254]:8080',
      /169\.254\.169\.254, which is link-local \(cloud metadata\)/,
    ],
    ['http://[::ffff:127.0.0.1]:3128', /IPv4-mapped 127\.0\.0\.1, which is loopback/],
    ['http://[::ffff:10.0.0.1]:3128', /IPv4-mapped 10\.0\.0\.1, which is private/],
    ['http://localhost.:8080', /^localhost is loopback/],
    ['http://169.254.169.254:80', /^169\.254\.169\.254 is link-local \(cloud metadata\)/],
    ['https://10.0.0.1:443', /^10\.0\.0\.1 is private \(10\.0\.0\.0\/8\)/],
    ['http://0x7f.1:8080', /^127\.0\.0\.1 is loopback/],
    ['http://2130706433:8080', /^127\.0\.0\.1 is loopback/],
    ['http://[fd00:ec2::254]:80', /^fd00:ec2::254 is unique-local \(cloud metadata, AWS\)/],
  ])('%s is refused: %s', (text, reason) => {
    expect(() => parseProxyLine(text, false)).toThrow(reason);
  });

  it('an explicit default port is a port (:80, :443); a missing one is still "no port"', () => {
    expect(parseProxyLine('http://proxy.example.com:80', false)).toMatchObject({
      label: 'proxy.example.com-80',
    });
    expect(parseProxyLine('https://proxy.example.com:443', false)).toMatchObject({
      label: 'proxy.example.com-443',
    });
    expect(() => parseProxyLine('http://proxy.example.com', false)).toThrow(/^no port$/);
  });
});
