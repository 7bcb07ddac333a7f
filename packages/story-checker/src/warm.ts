import type { ClientRequestArgs } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';

/**
 * Connections made ready before a lease is spent (packages/pool README, "Lease → arrival").
 *
 * A lease promises that its request reaches the upstream now. A request that first has to open
 * a connection through its proxy (TCP to the proxy, CONNECT, the proxy's own connection to the
 * upstream, TLS) arrives that much later — hundreds of ms on a cold worker or a loaded machine —
 * while requests leased after it on warm sockets arrive on time, so the upstream sees them
 * bunched. So the worker checks, right after a lease is granted, that an idle connection waits
 * for the request; when none does it returns the lease, opens one (a CONNECT tunnel carries no
 * request: the upstream counts nothing), and takes a lease again.
 *
 * These agents keep such pre-opened tunnels ("spares") and hand one out when the HTTP agent
 * needs a new socket; a spare that closes meanwhile is dropped.
 */
interface Spares {
  /** Idle tunnels opened ahead of a request. */
  spares: Socket[];
  /**
   * Opens one spare tunnel to host:port (resolves when it is ready, rejects on failure or when
   * the proxy has not answered within `timeoutMs`).
   */
  openSpare(host: string, port: number, timeoutMs: number): Promise<void>;
}

type ConnectCallback = (err: Error | null, socket: Socket | null) => void;
type AgentCallback = (err: Error | null, stream: Duplex) => void;

function takeSpare(spares: Socket[]): Socket | undefined {
  for (let s = spares.pop(); s; s = spares.pop()) {
    if (!s.destroyed && s.writable) {
      s.removeAllListeners('close');
      s.removeAllListeners('error');
      return s;
    }
  }
  return undefined;
}

function park(spares: Socket[], s: Socket): void {
  // The CONNECT's own timeout stays set on the socket: an idle spare must not time out on it.
  s.setTimeout(0);
  const drop = () => {
    const i = spares.indexOf(s);
    if (i >= 0) spares.splice(i, 1);
  };
  s.once('close', drop);
  // An idle tunnel the far end resets: drop it, never crash the process.
  s.on('error', () => {
    drop();
    s.destroy();
  });
  spares.push(s);
}

/** The parent class's own createConnection (hpagent's: a new CONNECT tunnel), called on `agent`. */
type ParentConnect = (
  agent: Spares,
  options: object,
  callback?: (err: Error | null, socket: Socket | null) => void,
) => void;

function parentConnect(proto: HttpProxyAgent | HttpsProxyAgent): ParentConnect {
  const { createConnection } = proto as unknown as {
    createConnection(o: object, cb?: ConnectCallback | AgentCallback): void;
  };
  return (agent, options, callback) => createConnection.call(agent, options, callback);
}

const httpConnect = parentConnect(HttpProxyAgent.prototype);
const httpsConnect = parentConnect(HttpsProxyAgent.prototype);

/** createConnection with spares: a ready spare when there is one, else the parent's tunnel. */
function connectOrSpare(
  agent: Spares,
  parent: ParentConnect,
  options: ClientRequestArgs,
  callback?: AgentCallback,
): void {
  const s = takeSpare(agent.spares);
  if (s) {
    process.nextTick(() => callback?.(null, s));
    return;
  }
  parent(agent, options, callback as ConnectCallback | undefined);
}

/** Opens one tunnel with the parent's createConnection and keeps it as a spare. */
function openSpareWith(agent: Spares, parent: ParentConnect, options: object): Promise<void> {
  return new Promise((resolve, reject) => {
    parent(agent, options, (err, s) => {
      if (err || !s) return reject(err ?? new Error('no socket'));
      park(agent.spares, s);
      resolve();
    });
  });
}

/** hpagent's HTTP forwarding agent (CONNECT tunnel per socket) with spare tunnels. */
export class SpareHttpProxyAgent extends HttpProxyAgent implements Spares {
  readonly spares: Socket[] = [];

  override createConnection(options: ClientRequestArgs, callback?: AgentCallback): undefined {
    connectOrSpare(this, httpConnect, options, callback);
  }

  openSpare(host: string, port: number, timeoutMs: number): Promise<void> {
    return openSpareWith(this, httpConnect, { host, port, timeout: timeoutMs });
  }
}

/** hpagent's HTTPS agent (CONNECT tunnel, then TLS, per socket) with spare tunnels. */
export class SpareHttpsProxyAgent extends HttpsProxyAgent implements Spares {
  readonly spares: Socket[] = [];

  override createConnection(options: ClientRequestArgs, callback?: AgentCallback): undefined {
    connectOrSpare(this, httpsConnect, options, callback);
  }

  openSpare(host: string, port: number, timeoutMs: number): Promise<void> {
    return openSpareWith(this, httpsConnect, { host, port, servername: host, timeout: timeoutMs });
  }
}

/** Idle sockets an HTTP/1.1 agent could give a request at once: its free ones and its spares. */
export function idleSockets(agent: {
  freeSockets: NodeJS.ReadOnlyDict<unknown[]>;
  spares?: Socket[];
}): number {
  let n = agent.spares?.length ?? 0;
  for (const list of Object.values(agent.freeSockets)) n += list?.length ?? 0;
  return n;
}
