import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  serial,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/**
 * Postgres is the truth (DESIGN.md invariant 1). Redis only holds what can be rebuilt from
 * these tables. Times are `timestamptz`; durations are integer milliseconds (`*_ms`).
 */

/** One row per batch; the counters move in the same transaction as an item's final state. */
export const batches = pgTable('batches', {
  id: text('id').primaryKey(),
  name: text('name'),
  /** queued → running → completed. */
  state: text('state').notNull().default('queued'),
  /** Accepted (distinct) usernames. */
  total: integer('total').notNull().default(0),
  /** Items in a final state. */
  done: integer('done').notNull().default(0),
  countActive: integer('count_active').notNull().default(0),
  countNone: integer('count_none').notNull().default(0),
  countPrivate: integer('count_private').notNull().default(0),
  countNotFound: integer('count_not_found').notNull().default(0),
  countFailed: integer('count_failed').notNull().default(0),
  /** Input lines that repeated a name already in the batch. */
  duplicates: integer('duplicates').notNull().default(0),
  /** Input lines rejected as invalid. */
  rejected: integer('rejected').notNull().default(0),
  /** False while the producer is still adding items: a batch cannot complete before that. */
  sealed: boolean('sealed').notNull().default(false),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  startedAt: timestamp('started_at', { withTimezone: true }),
  finishedAt: timestamp('finished_at', { withTimezone: true }),
});

/** One row per (batch, username): the item and, once final, its result. */
export const items = pgTable(
  'items',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    batchId: text('batch_id')
      .notNull()
      .references(() => batches.id, { onDelete: 'cascade' }),
    /** Input position (line number, or array index for JSON), for results in input order. */
    seq: bigint('seq', { mode: 'number' }).notNull(),
    username: text('username').notNull(),
    /** pending, then one of active | none | private | not_found | failed, exactly once. */
    status: text('status').notNull().default('pending'),
    storyCount: integer('story_count'),
    latestStoryAt: timestamp('latest_story_at', { withTimezone: true }),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    /** Instagram user id, digits as text (never a JS number). */
    userId: text('user_id'),
    checkedAt: timestamp('checked_at', { withTimezone: true }),
    attempts: integer('attempts').notNull().default(0),
    cached: boolean('cached').notNull().default(false),
    /** Stable error code for `failed` (e.g. upstream_error). */
    error: text('error'),
  },
  (t) => [
    uniqueIndex('items_batch_username_uq').on(t.batchId, t.username),
    index('items_batch_seq_idx').on(t.batchId, t.seq),
    index('items_batch_pending_idx')
      .on(t.batchId)
      .where(sql`${t.status} = 'pending'`),
  ],
);

/** Proxies (egress addresses). The password is stored encrypted; the URL without it. */
export const proxies = pgTable('proxies', {
  id: serial('id').primaryKey(),
  label: text('label').notNull().unique(),
  /** scheme://user@host:port — never with the password. */
  url: text('url').notNull(),
  /** AES-256-GCM ciphertext of the password, key id inside; null when none. */
  passwordEnc: text('password_enc'),
  /** active | cooling | broken | disabled. */
  status: text('status').notNull().default('active'),
  usageCount: bigint('usage_count', { mode: 'number' }).notNull().default(0),
  lastUsed: timestamp('last_used', { withTimezone: true }),
  cooldownUntil: timestamp('cooldown_until', { withTimezone: true }),
  lastError: text('last_error'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Logged-in sessions (accounts the operator owns). Cookies are stored encrypted. */
export const sessions = pgTable('sessions', {
  id: serial('id').primaryKey(),
  label: text('label').notNull().unique(),
  /** AES-256-GCM ciphertext of the cookie set (sessionid, csrftoken), key id inside. */
  cookiesEnc: text('cookies_enc').notNull(),
  dsUserId: text('ds_user_id'),
  proxyId: integer('proxy_id').references(() => proxies.id, { onDelete: 'set null' }),
  /** active | cooling | invalid | challenge | suspended | disabled. */
  status: text('status').notNull().default('active'),
  /** Budget override, `N/duration`; null = SESSION_RATE. */
  rate: text('rate'),
  burst: integer('burst'),
  usageCount: bigint('usage_count', { mode: 'number' }).notNull().default(0),
  lastUsed: timestamp('last_used', { withTimezone: true }),
  /** The original design's flag: throttled right now. */
  rateLimited: boolean('rate_limited').notNull().default(false),
  cooldownUntil: timestamp('cooldown_until', { withTimezone: true }),
  lastError: text('last_error'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * The batch log (the original BatchLogService): one row per check attempt and per batch
 * event (created, started, finished, reconciled), with timings and, for failures, the error
 * class, code, redacted message and cause chain.
 */
export const batchLog = pgTable(
  'batch_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    batchId: text('batch_id')
      .notNull()
      .references(() => batches.id, { onDelete: 'cascade' }),
    /** check | created | started | finished | reconciled. */
    event: text('event').notNull(),
    username: text('username'),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    totalMs: integer('total_ms'),
    profileMs: integer('profile_ms'),
    storiesMs: integer('stories_ms'),
    requests: integer('requests'),
    /** Cache hits this check used (user id, story result). */
    cacheHits: integer('cache_hits'),
    sessionLabel: text('session_label'),
    proxyLabel: text('proxy_label'),
    attempt: integer('attempt'),
    /** Result status, or `retry` / `delayed` for an attempt that did not end the item. */
    outcome: text('outcome'),
    errorClass: text('error_class'),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    /** Redacted cause chain [{name, message, code}]. */
    cause: jsonb('cause'),
    data: jsonb('data'),
  },
  (t) => [index('batch_log_batch_idx').on(t.batchId, t.id)],
);
