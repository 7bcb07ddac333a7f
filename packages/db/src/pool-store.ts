import { asc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import type { Db } from './client.js';
import { proxies, sessions } from './schema.js';

/** A proxy row as the pool store reads it (the password only as ciphertext). */
export type ProxyRow = typeof proxies.$inferSelect;
/** A session row (cookies only as ciphertext). */
export type SessionRow = typeof sessions.$inferSelect;

/**
 * Creates or updates proxies by label, in one transaction (all or none). Returns the rows with
 * whether each was created. `url` carries no password; `passwordEnc` is ciphertext or null.
 */
export async function upsertProxies(
  db: Db,
  rows: Array<{ label: string; url: string; passwordEnc: string | null }>,
): Promise<Array<{ id: number; label: string; created: boolean }>> {
  if (rows.length === 0) return [];
  return db.transaction(async (tx) => {
    const out: Array<{ id: number; label: string; created: boolean }> = [];
    for (const r of rows) {
      const res = await tx
        .insert(proxies)
        .values({ label: r.label, url: r.url, passwordEnc: r.passwordEnc })
        .onConflictDoUpdate({
          target: proxies.label,
          set: {
            url: r.url,
            passwordEnc: r.passwordEnc,
            status: 'active',
            lastError: null,
            updatedAt: sql`now()`,
          },
        })
        .returning({ id: proxies.id, label: proxies.label, created: sql<boolean>`(xmax = 0)` });
      out.push(res[0]!);
    }
    return out;
  });
}

/**
 * Creates or updates sessions by label, in one transaction. A re-import resets the status to
 * active (the operator says the cookie is good again). `proxyLabel` must name an existing proxy.
 */
export async function upsertSessions(
  db: Db,
  rows: Array<{
    label: string;
    cookiesEnc: string;
    dsUserId: string | null;
    proxyLabel: string | null;
    rate: string | null;
    burst: number | null;
  }>,
): Promise<Array<{ id: number; label: string; proxyId: number | null; created: boolean }>> {
  if (rows.length === 0) return [];
  return db.transaction(async (tx) => {
    const labels = [
      ...new Set(rows.map((r) => r.proxyLabel).filter((l): l is string => l !== null)),
    ];
    const found = labels.length
      ? await tx
          .select({ id: proxies.id, label: proxies.label })
          .from(proxies)
          .where(inArray(proxies.label, labels))
      : [];
    const byLabel = new Map(found.map((p) => [p.label, p.id]));
    const out: Array<{ id: number; label: string; proxyId: number | null; created: boolean }> = [];
    for (const r of rows) {
      const proxyId = r.proxyLabel === null ? null : (byLabel.get(r.proxyLabel) ?? null);
      if (r.proxyLabel !== null && proxyId === null)
        throw new Error(`session ${r.label}: no proxy labelled ${r.proxyLabel}`);
      const values = {
        label: r.label,
        cookiesEnc: r.cookiesEnc,
        dsUserId: r.dsUserId,
        proxyId,
        rate: r.rate,
        burst: r.burst,
      };
      const res = await tx
        .insert(sessions)
        .values(values)
        .onConflictDoUpdate({
          target: sessions.label,
          set: {
            ...values,
            status: 'active',
            rateLimited: false,
            cooldownUntil: null,
            lastError: null,
            updatedAt: sql`now()`,
          },
        })
        .returning({
          id: sessions.id,
          label: sessions.label,
          proxyId: sessions.proxyId,
          created: sql<boolean>`(xmax = 0)`,
        });
      out.push(res[0]!);
    }
    return out;
  });
}

/** Every proxy, by label. */
export async function listProxies(db: Db): Promise<ProxyRow[]> {
  return db.select().from(proxies).orderBy(asc(proxies.label));
}

/** Every session, by label. */
export async function listSessions(db: Db): Promise<SessionRow[]> {
  return db.select().from(sessions).orderBy(asc(sessions.label));
}

/** Sets a session's status (enable/disable/invalid…) by label; false when there is none. */
export async function setSessionStatus(
  db: Db,
  label: string,
  status: string,
  lastError?: string | null,
): Promise<boolean> {
  const res = await db
    .update(sessions)
    .set({ status, updatedAt: sql`now()`, ...(lastError !== undefined ? { lastError } : {}) })
    .where(eq(sessions.label, label))
    .returning({ id: sessions.id });
  return res.length > 0;
}

/** The live state of one pool member, mirrored into Postgres. */
export interface MemberMirror {
  id: number;
  status: string;
  usageCount: number;
  lastUsed: Date | null;
  cooldownUntil: Date | null;
  lastError: string | null;
}

/**
 * Mirrors the pool's live state (kept in Redis) into the sessions and proxies tables: status,
 * usage, last used, cooldown, last error, and the original design's `rate_limited` flag.
 * Idempotent; run periodically by workers (packages/pool `mirrorToStore`). `disabled` is the
 * operator's setting, not live state: a row that says it keeps it, and a snapshot that says it
 * (read before `sessions enable` reached Redis) does not write it.
 */
export async function mirrorPool(
  db: Db,
  state: { sessions: MemberMirror[]; proxies: MemberMirror[] },
): Promise<void> {
  await db.transaction(async (tx) => {
    for (const s of state.sessions) {
      await tx
        .update(sessions)
        .set({
          status: liveStatus(sessions.status, s.status),
          usageCount: s.usageCount,
          lastUsed: s.lastUsed,
          cooldownUntil: s.cooldownUntil,
          rateLimited: s.status === 'cooling',
          lastError: s.lastError,
          updatedAt: sql`now()`,
        })
        .where(eq(sessions.id, s.id));
    }
    for (const p of state.proxies) {
      await tx
        .update(proxies)
        .set({
          status: liveStatus(proxies.status, p.status),
          usageCount: p.usageCount,
          lastUsed: p.lastUsed,
          cooldownUntil: p.cooldownUntil,
          lastError: p.lastError,
          updatedAt: sql`now()`,
        })
        .where(eq(proxies.id, p.id));
    }
  });
}

/** The mirrored status: the live one, unless the row or the live one says `disabled`. */
function liveStatus(column: AnyPgColumn, live: string): SQL {
  return sql`CASE WHEN ${column} = 'disabled' OR ${live} = 'disabled' THEN ${column} ELSE ${live} END`;
}

/**
 * Rewrites every stored secret with `reencrypt` (key rotation), in one transaction: all rows
 * move to the new key or none does. Returns how many values changed.
 */
export async function reencryptSecrets(
  db: Db,
  reencrypt: (ciphertext: string, context: string) => string,
): Promise<{ sessions: number; proxies: number }> {
  return db.transaction(async (tx) => {
    let s = 0;
    let p = 0;
    for (const r of await tx.select().from(sessions)) {
      const next = reencrypt(r.cookiesEnc, `session:${r.label}`);
      if (next !== r.cookiesEnc) {
        await tx
          .update(sessions)
          .set({ cookiesEnc: next, updatedAt: sql`now()` })
          .where(eq(sessions.id, r.id));
        s++;
      }
    }
    for (const r of await tx.select().from(proxies)) {
      if (!r.passwordEnc) continue;
      const next = reencrypt(r.passwordEnc, `proxy:${r.label}`);
      if (next !== r.passwordEnc) {
        await tx
          .update(proxies)
          .set({ passwordEnc: next, updatedAt: sql`now()` })
          .where(eq(proxies.id, r.id));
        p++;
      }
    }
    return { sessions: s, proxies: p };
  });
}

/** Sessions and proxies as the pool syncs them: ids as strings, no secrets. */
export interface PoolStore {
  proxies: Array<{ id: string; label: string; status: string }>;
  sessions: Array<{
    id: string;
    label: string;
    proxyId: string | null;
    rate: string | null;
    burst: number | null;
    status: string;
  }>;
}

/** Maps rows to pool members: the one place that does, for the CLI and the workers alike. */
export function poolStoreOf(proxyRows: ProxyRow[], sessionRows: SessionRow[]): PoolStore {
  return {
    proxies: proxyRows.map((r) => ({ id: String(r.id), label: r.label, status: r.status })),
    sessions: sessionRows.map((r) => ({
      id: String(r.id),
      label: r.label,
      proxyId: r.proxyId === null ? null : String(r.proxyId),
      rate: r.rate,
      burst: r.burst,
      status: r.status,
    })),
  };
}

/** Reads sessions and proxies from Postgres as {@link PoolStore}. */
export async function loadPoolStore(db: Db): Promise<PoolStore> {
  const [p, s] = await Promise.all([listProxies(db), listSessions(db)]);
  return poolStoreOf(p, s);
}
