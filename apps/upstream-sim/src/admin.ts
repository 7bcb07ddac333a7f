/**
 * The admin routes under `/__sim/`: the truth, the counters, the request log, the scenario,
 * sessions, budgets and proxies. Answers are JSON (the request log is NDJSON); an error is a
 * 400 `{message, status: "fail"}`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { jsonAnswer } from './answers.js';
import type { Decider } from './decide.js';
import { send } from './http-io.js';
import { failBody } from './payloads.js';
import { PROXY_BROKEN_MODES } from './proxy.js';
import type { ProxyBrokenMode, ProxyPool } from './proxy.js';
import type { RequestLog } from './request-log.js';
import { SESSION_STATES } from './scenario.js';
import type { Scenario, SessionState } from './scenario.js';
import type { World } from './world.js';
import { coerceError } from '@storycheck/logger';

/** What the admin routes read and change. */
export interface AdminContext {
  world: World;
  decider: Decider;
  requests: RequestLog;
  /** Clock deciding which items are expired, epoch seconds (the truth route's default). */
  nowSecs: () => number;
  /** The proxies started with the simulator, once they are. */
  pool: () => ProxyPool | undefined;
}

/** Admin request bodies (scenario patches) larger than this are refused, bytes. */
const ADMIN_BODY_LIMIT_BYTES = 1_000_000;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > ADMIN_BODY_LIMIT_BYTES) {
        reject(new RangeError(`body larger than ${ADMIN_BODY_LIMIT_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function adminJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, jsonAnswer(status, JSON.stringify(value)), false);
}

/** Answers an admin request; a failure becomes a 400 (or a dropped connection once answering). */
export function serveAdmin(
  ctx: AdminContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): void {
  handleAdmin(ctx, req, res, url).catch((err: unknown) => {
    if (!res.headersSent) {
      adminJson(res, 400, { message: coerceError(err).message, status: 'fail' });
    } else {
      res.destroy();
    }
  });
}

async function handleAdmin(
  ctx: AdminContext,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const path = url.pathname.replace(/\/+$/, '');
  const method = req.method ?? 'GET';
  const route = `${method} ${path}`;
  const body = method === 'POST' ? await readBody(req) : (req.resume(), '');
  const sessionMatch = /^POST \/__sim\/sessions\/([^/]+)$/.exec(route);
  const proxyMatch = /^POST \/__sim\/proxies\/([^/]+)$/.exec(route);
  if (sessionMatch) return setSessionState(ctx, res, url, sessionMatch[1], body);
  if (proxyMatch) return setProxyBroken(ctx, res, url, proxyMatch[1]);
  return routeAdmin(ctx, res, url, route, body);
}

/** `POST /__sim/sessions/<label>?state=…` (or `{"state": …}`). */
function setSessionState(
  ctx: AdminContext,
  res: ServerResponse,
  url: URL,
  rawLabel: string | undefined,
  body: string,
): void {
  const label = decodeURIComponent(rawLabel ?? '');
  const parsed: unknown = body.trim() === '' ? {} : JSON.parse(body);
  const state = url.searchParams.get('state') ?? (parsed as { state?: unknown }).state;
  if (typeof state !== 'string' || !(SESSION_STATES as readonly string[]).includes(state)) {
    return adminJson(res, 400, {
      message: `state must be one of ${SESSION_STATES.join(', ')}`,
      status: 'fail',
    });
  }
  ctx.decider.overrideState(label, state as SessionState);
  return adminJson(res, 200, { label, state, status: 'ok' });
}

/** `POST /__sim/proxies/<label>?broken=<mode|none>`. */
async function setProxyBroken(
  ctx: AdminContext,
  res: ServerResponse,
  url: URL,
  rawLabel: string | undefined,
): Promise<void> {
  const pool = ctx.pool();
  const label = decodeURIComponent(rawLabel ?? '');
  const raw = url.searchParams.get('broken') ?? 'none';
  if (!pool || !pool.proxies.some((p) => p.label === label)) {
    return adminJson(res, 404, { message: `no proxy "${label}"`, status: 'fail' });
  }
  if (raw !== 'none' && !(PROXY_BROKEN_MODES as readonly string[]).includes(raw)) {
    return adminJson(res, 400, {
      message: `broken must be none or one of ${PROXY_BROKEN_MODES.join(', ')}`,
      status: 'fail',
    });
  }
  await pool.setBroken(label, raw === 'none' ? null : (raw as ProxyBrokenMode));
  return adminJson(res, 200, { label, broken: raw === 'none' ? null : raw, status: 'ok' });
}

/** The admin routes without a parameter in their path. */
function routeAdmin(
  ctx: AdminContext,
  res: ServerResponse,
  url: URL,
  route: string,
  body: string,
): void {
  const { world, decider, requests } = ctx;
  switch (route) {
    case 'GET /__sim/health':
      return adminJson(res, 200, {
        status: 'ok',
        seed: world.seed,
        size: world.size,
        epochSecs: world.epochSecs,
        digest: world.digest(),
        scenario: decider.settings.name,
      });
    case 'GET /__sim/truth':
      return sendTruth(ctx, res, url);
    case 'GET /__sim/stats':
      return adminJson(res, 200, requests.stats);
    case 'POST /__sim/reset-stats':
      requests.resetStats();
      return adminJson(res, 200, { status: 'ok' });
    case 'GET /__sim/requests':
      return sendRequestLog(ctx, res, url);
    case 'GET /__sim/scenario':
      return adminJson(res, 200, decider.settingsView());
    case 'POST /__sim/scenario': {
      let patch: unknown;
      try {
        patch = JSON.parse(body);
        decider.updateScenario(patch as Scenario);
      } catch (err) {
        return adminJson(res, 400, { message: coerceError(err).message, status: 'fail' });
      }
      return adminJson(res, 200, decider.settingsView());
    }
    case 'GET /__sim/sessions':
      return adminJson(res, 200, decider.sessionViews());
    case 'POST /__sim/reset-budgets':
      decider.resetBudgets();
      return adminJson(res, 200, { status: 'ok' });
    case 'GET /__sim/proxies': {
      const pool = ctx.pool();
      const proxyStats = pool?.stats() ?? {};
      return adminJson(
        res,
        200,
        (pool?.proxies ?? []).map((p) => ({ ...p, ...proxyStats[p.label] })),
      );
    }
    default:
      return adminJson(res, 404, { message: 'unknown admin route', status: 'fail' });
  }
}

/** `GET /__sim/truth?username=…[&nowSecs=…]`. */
function sendTruth(ctx: AdminContext, res: ServerResponse, url: URL): void {
  const username = (url.searchParams.get('username') ?? '').trim();
  if (!username) return send(res, jsonAnswer(400, failBody('username is required')), false);
  const at = url.searchParams.get('nowSecs');
  const atSecs = at !== null && /^\d+$/.test(at) ? Number(at) : ctx.nowSecs();
  return adminJson(res, 200, {
    username: username.toLowerCase(),
    ...ctx.world.truth(username, atSecs),
  });
}

/** `GET /__sim/requests[?limit=N]`: the newest entries as NDJSON, oldest first. */
function sendRequestLog(ctx: AdminContext, res: ServerResponse, url: URL): void {
  const requestLogLimit = ctx.requests.limit;
  const limitRaw = url.searchParams.get('limit');
  const limit = Math.min(
    requestLogLimit,
    limitRaw !== null && /^\d+$/.test(limitRaw) ? Number(limitRaw) : requestLogLimit,
  );
  const text = ctx.requests
    .recent(limit)
    .map((e) => `${JSON.stringify(e)}\n`)
    .join('');
  res.writeHead(200, {
    'content-type': 'application/x-ndjson; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
