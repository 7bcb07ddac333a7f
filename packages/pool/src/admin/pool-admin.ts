import type { Config } from '@storycheck/config';
import {
  listProxies,
  listSessions,
  loadPoolStore,
  reencryptSecrets,
  setSessionStatus,
  upsertProxies,
  upsertSessions,
  type Db,
  type ProxyRow,
} from '@storycheck/db';
import type { Logger } from '@storycheck/logger';
import type { Redis } from 'ioredis';
import { openPool } from '../defaults.js';
import { PoolInputError, parseProxyList, parseSessionList } from './import.js';
import type { Pool } from '../pool.js';
import { encryptSecret, parseSecretKeys, reencryptSecret, type SecretKey } from '../secrets.js';
import { checkSessions, type SessionCheck } from './session-check.js';
import { mirrorToStore, syncFromStore } from './sync.js';

/** What {@link PoolAdmin} works on: the deployment's configuration, Postgres and Redis. */
export interface PoolAdminOptions {
  config: Config;
  db: Db;
  /**
   * The caller's connection (the caller closes it), or how to open it: opened at the first
   * use, so that `rotateSecrets` and refused input never touch Redis.
   */
  redis: Redis | (() => Redis);
  /** For `checkSessions`' HTTP client. */
  logger?: Logger;
}

/** An import's text, or how to read it (read after the secret key is checked). */
export type ImportInput = string | (() => Promise<string>);

const read = (input: ImportInput) => (typeof input === 'string' ? input : input());

/** How many members an import wrote. */
export interface ImportCount {
  imported: number;
  /** Of those, how many were new (the rest were updated). */
  created: number;
}

/** A proxy as `storycheck proxies list` shows it: its live state, its password masked. */
export interface ProxyView {
  label: string;
  /** `***` in place of the password. */
  url: string;
  status: string;
  usage: number;
  lastUsed: string | null;
  lastError: string | null;
}

/** A session as `storycheck sessions list` shows it: its live state, never a cookie. */
export interface SessionView {
  label: string;
  status: string;
  proxy: string | null;
  lastUsed: string | null;
  usage: number;
  cooldownLeftMs: number;
  lastError: string | null;
  rate: string | null;
  burst: number | null;
}

/**
 * Pool administration, the one API behind `storycheck proxies …`, `sessions …` and
 * `secret-key --rotate`. Imports are validated whole before anything is written (a
 * {@link PoolInputError} otherwise), secrets are encrypted before they reach Postgres, and
 * settings are written to Postgres first, then brought into Redis ({@link syncFromStore});
 * live state is read from Redis. No method returns, logs or throws a cookie or a password.
 */
export class PoolAdmin {
  private opened: Pool | undefined;

  constructor(private readonly opts: PoolAdminOptions) {}

  /** The deployment's pool in Redis. */
  get pool(): Pool {
    const { config, redis } = this.opts;
    this.opened ??= openPool(config, typeof redis === 'function' ? redis() : redis);
    return this.opened;
  }

  /**
   * Imports proxies (`URL` or `label=URL` per line): passwords encrypted, a label imported
   * again updated and active again.
   */
  async importProxies(input: ImportInput): Promise<ImportCount> {
    const parsed = parseProxyList(await read(input), this.opts.config.allowPrivateProxies);
    const key = parsed.some((p) => p.password) ? this.keys()[0]! : undefined;
    const rows = await upsertProxies(
      this.opts.db,
      parsed.map((p) => ({
        label: p.label,
        url: p.url,
        passwordEnc: p.password && key ? encryptSecret(p.password, key, `proxy:${p.label}`) : null,
      })),
    );
    // An import is the operator saying "this proxy is good": active again in the pool too.
    for (const r of rows) await this.pool.upsertProxy({ id: String(r.id), label: r.label });
    return { imported: rows.length, created: rows.filter((r) => r.created).length };
  }

  /**
   * Imports sessions (a JSON array or NDJSON): every entry checked (shape, the local cookie
   * check, its proxy imported), cookies encrypted, a label imported again updated and active
   * again.
   */
  async importSessions(input: ImportInput): Promise<ImportCount> {
    const key = this.keys()[0]!;
    const rows = parseSessionList(await read(input));
    const known = new Set((await listProxies(this.opts.db)).map((p) => p.label));
    const missing = rows.find((r) => r.proxy && !known.has(r.proxy));
    if (missing)
      throw new PoolInputError(
        `session ${missing.label}: no proxy labelled ${missing.proxy} (import it first); nothing imported`,
      );
    const saved = await upsertSessions(
      this.opts.db,
      rows.map((r) => ({
        label: r.label,
        cookiesEnc: encryptSecret(
          JSON.stringify({
            sessionid: r.sessionid,
            csrftoken: r.csrftoken ?? null,
            ds_user_id: r.ds_user_id ?? null,
          }),
          key,
          `session:${r.label}`,
        ),
        dsUserId: r.ds_user_id ?? null,
        proxyLabel: r.proxy ?? null,
        rate: r.rate ?? null,
        burst: r.burst ?? null,
      })),
    );
    await this.sync();
    // A re-import is the operator saying "this cookie is good": active again in the pool too.
    for (const s of saved) await this.pool.enableSession(String(s.id));
    return { imported: saved.length, created: saved.filter((s) => s.created).length };
  }

  /** Every proxy by label: settings from Postgres, live state from Redis. */
  async proxies(): Promise<ProxyView[]> {
    const rows = await listProxies(this.opts.db);
    const live = new Map((await this.pool.snapshot()).proxies.map((p) => [p.id, p]));
    return rows.map((r) => {
      const l = live.get(String(r.id));
      return {
        label: r.label,
        url: shownUrl(r),
        status: l?.status ?? r.status,
        usage: l?.usageCount ?? r.usageCount,
        lastUsed: l?.lastUsedAt
          ? new Date(l.lastUsedAt).toISOString()
          : (r.lastUsed?.toISOString() ?? null),
        lastError: l?.lastError ?? r.lastError,
      };
    });
  }

  /** Every session by label: settings from Postgres, live state from Redis. */
  async sessions(): Promise<SessionView[]> {
    const [rows, proxyRows] = await Promise.all([
      listSessions(this.opts.db),
      listProxies(this.opts.db),
    ]);
    const live = new Map((await this.pool.snapshot()).sessions.map((s) => [s.id, s]));
    const proxyLabel = new Map(proxyRows.map((p) => [p.id, p.label]));
    return rows.map((r) => {
      const l = live.get(String(r.id));
      return {
        label: r.label,
        status: l?.status ?? r.status,
        proxy: r.proxyId === null ? null : (proxyLabel.get(r.proxyId) ?? null),
        lastUsed: l?.lastUsedAt
          ? new Date(l.lastUsedAt).toISOString()
          : (r.lastUsed?.toISOString() ?? null),
        usage: l?.usageCount ?? r.usageCount,
        cooldownLeftMs: l?.cooldownLeftMs ?? 0,
        lastError: l?.lastError ?? r.lastError,
        rate: r.rate,
        burst: r.burst,
      };
    });
  }

  /**
   * `sessions enable|disable`: the setting goes to Postgres, then to Redis. Enabling makes the
   * session active again whatever its live state (invalid, challenge…): the operator's word.
   */
  async setSessionEnabled(label: string, enabled: boolean): Promise<void> {
    const row = (await listSessions(this.opts.db)).find((r) => r.label === label);
    if (!row) throw new PoolInputError(`no session labelled ${label}`);
    await setSessionStatus(
      this.opts.db,
      label,
      enabled ? 'active' : 'disabled',
      enabled ? null : undefined,
    );
    await this.sync();
    if (enabled) await this.pool.enableSession(String(row.id));
    else await this.pool.disableSession(String(row.id));
  }

  /**
   * `sessions check [label…]`: asks the upstream whether each session (all when `labels` is
   * empty) is logged in, under a lease of that session; verdicts go to Redis, then mirrored.
   */
  async checkSessions(labels: readonly string[]): Promise<SessionCheck[]> {
    const ring = this.keys();
    const rows = await listSessions(this.opts.db);
    const unknown = labels.filter((l) => !rows.some((r) => r.label === l));
    if (unknown.length) throw new PoolInputError(`no session labelled ${unknown.join(', ')}`);
    const chosen = labels.length ? rows.filter((r) => labels.includes(r.label)) : rows;
    await this.sync();
    const report = await checkSessions({
      config: this.opts.config,
      pool: this.pool,
      ring,
      sessions: chosen,
      proxies: await listProxies(this.opts.db),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    });
    await mirrorToStore(this.pool, this.opts.db);
    return report;
  }

  /**
   * `secret-key --rotate`: with STORYCHECK_SECRET_KEY="new,old[,older]", re-encrypts every
   * stored cookie and proxy password under the new key, in one transaction.
   */
  async rotateSecrets(): Promise<{ sessions: number; proxies: number; keyId: string }> {
    const ring = this.keys();
    const current = ring[0]!;
    const n = await reencryptSecrets(this.opts.db, (ct, context) =>
      reencryptSecret(ct, ring, current, context),
    );
    return { ...n, keyId: current.id };
  }

  /** Postgres → Redis: the operator's settings into the pool, live states kept. */
  private async sync(): Promise<void> {
    await syncFromStore(this.pool, this.opts.config, await loadPoolStore(this.opts.db));
  }

  /** STORYCHECK_SECRET_KEY as a key ring (current key first). */
  private keys(): SecretKey[] {
    if (!this.opts.config.secretKey) {
      throw new PoolInputError(
        'STORYCHECK_SECRET_KEY is not set (run "storycheck secret-key" to make one)',
      );
    }
    return parseSecretKeys(this.opts.config.secretKey);
  }
}

/** Masks a stored proxy URL for display: the password never leaves its column. */
function shownUrl(r: ProxyRow): string {
  if (!r.passwordEnc) return r.url;
  const u = new URL(r.url);
  u.password = '***';
  return u.href.replace(/\/$/, '');
}
