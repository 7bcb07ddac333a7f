/**
 * Where Redis is: one node, a Redis Cluster, or a primary found through Sentinel. REDIS_URL
 * says which by its scheme (README, "Configuration"):
 *
 *   redis://[user:pass@]host:port[/db]                       one node (rediss:// with TLS)
 *   redis+cluster://[user:pass@]host:port[,host:port…]       Redis Cluster: seed nodes
 *   redis+sentinel://[user:pass@]host:port[,host:port…]/name[/db]   Sentinel: sentinels, primary name
 *
 * `rediss+cluster://` and `rediss+sentinel://` connect with TLS. With Sentinel the password is
 * used for the primary/replicas and for the sentinels alike.
 */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | {
      kind: 'cluster';
      nodes: RedisHostPort[];
      username?: string;
      password?: string;
      tls: boolean;
    }
  | {
      kind: 'sentinel';
      sentinels: RedisHostPort[];
      /** The primary's name as the sentinels know it (`sentinel monitor <name> …`). */
      name: string;
      db: number;
      username?: string;
      password?: string;
      tls: boolean;
    };

/** One `host:port` of a Cluster seed list or a Sentinel list. */
export interface RedisHostPort {
  host: string;
  port: number;
}

const MULTI = /^(rediss?)\+(cluster|sentinel):\/\/(?:([^@/]*)@)?([^/?#]+)(?:\/([^?#]*))?$/;

function hostPort(s: string, defaultPort: number): RedisHostPort {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(s);
  if (!m || !m[1]) throw new Error(`"${s}" is not host:port`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port in "${s}"`);
  return { host: m[1], port };
}

/**
 * Parses REDIS_URL into a {@link RedisTarget}. Throws an Error whose message names what is
 * wrong and never repeats the URL (it may carry a password).
 */
export function parseRedisUrl(url: string): RedisTarget {
  const m = MULTI.exec(url);
  if (!m) {
    let scheme: string;
    try {
      scheme = new URL(url).protocol.replace(':', '');
    } catch {
      throw new Error(
        'must be a URL with scheme redis, rediss, redis+cluster or redis+sentinel (rediss+… for TLS)',
      );
    }
    if (scheme !== 'redis' && scheme !== 'rediss')
      throw new Error(
        'must be a URL with scheme redis, rediss, redis+cluster or redis+sentinel (rediss+… for TLS)',
      );
    return { kind: 'single', url };
  }
  const [, scheme, kind, userinfo, hosts, path = ''] = m;
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined && userinfo !== '') {
    const i = userinfo.indexOf(':');
    const user = decodeURIComponent(i < 0 ? userinfo : userinfo.slice(0, i));
    username = user === '' ? undefined : user;
    password = i < 0 ? undefined : decodeURIComponent(userinfo.slice(i + 1));
  }
  const tls = scheme === 'rediss';
  const list = hosts!.split(',').filter((h) => h !== '');
  if (list.length === 0) throw new Error(`${kind} URL names no host:port`);
  const parts = path.split('/').filter((p) => p !== '');
  if (kind === 'cluster') {
    if (parts.length > 1 || (parts.length === 1 && parts[0] !== '0'))
      throw new Error('Redis Cluster has only database 0: drop the /<db> from the URL');
    return { kind, nodes: list.map((h) => hostPort(h, 6379)), username, password, tls };
  }
  const [name, db = '0'] = parts;
  if (!name || parts.length > 2)
    throw new Error('a redis+sentinel URL ends in /<primary name>[/<db>]');
  if (!/^\d+$/.test(db)) throw new Error(`database "${db}" is not a number`);
  return {
    kind: 'sentinel',
    sentinels: list.map((h) => hostPort(h, 26379)),
    name: decodeURIComponent(name),
    db: Number(db),
    username,
    password,
    tls,
  };
}

/**
 * THE Redis Cluster rule, in one place: a key part wrapped in a hash tag. Keys that carry the
 * same tag hash to the same slot, so one Lua script or MULTI may touch them all; keys with
 * different tags spread over the cluster. Every key builder (pool, caches, queues) goes through
 * this function. A no-op in meaning on one node or Sentinel (the braces are only characters).
 */
export function slotTag(part: string): string {
  if (part.includes('{') || part.includes('}'))
    throw new Error(`a hash tag cannot contain braces: "${part}"`);
  return `{${part}}`;
}

/**
 * Why `prefix` cannot be used on a Redis Cluster, or null when it can. A prefix with its own
 * `{…}` would override the tags the code chooses (Redis hashes the first `{…}` of a key), so
 * every key would land in one slot, or a pool's keys in different ones.
 */
export function clusterPrefixProblem(prefix: string): string | null {
  if (prefix.includes('{') || prefix.includes('}'))
    return 'must not contain { or } on a Redis Cluster: the code chooses the hash tags';
  return null;
}
