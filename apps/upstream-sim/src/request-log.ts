/**
 * The simulator's record of non-admin requests: the counters ({@link SimStats}) and the request
 * log, in memory (capped) and optionally appended to an NDJSON file.
 */
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import type { Logger } from '@storycheck/logger';
import type { Decision, Outcome } from './decide.js';
import { PATH_KINDS } from './http-io.js';
import type { PathKind } from './http-io.js';
import type { World } from './world.js';

/** One non-admin request. No secrets: the session cookie appears only as a label. */
export interface RequestLogEntry {
  /** When the request arrived, epoch milliseconds. */
  timeMs: number;
  /** Client IP as the simulator sees it (a proxy's egress address), `::ffff:` stripped. */
  client: string | null;
  /** The session's label (scenario label, or `s:` + 6 hex of sha256(cookie)); null without cookie. */
  session: string | null;
  kind: PathKind;
  /** The path asked, without the query string. */
  path: string;
  /** Reel ids asked (reels_media) or the user id (user_story); [] otherwise. */
  ids: string[];
  /** Username asked (profile), lowercased; null otherwise. */
  username: string | null;
  /** HTTP status answered; 0 when none was (connection reset, never answered, client gone). */
  status: number;
  /** See {@link Outcome}. */
  outcome: Outcome;
  /** From arrival to the end of the answer, injected latency included, milliseconds. */
  latencyMs: number;
}

/** Counters of one session or one client IP. */
export interface PartyStats {
  requests: number;
  /** Requests answered with the throttle answer because of this party's own budget/penalty. */
  throttled: number;
  /** Keyed by status code as a string ("0" = no answer). */
  byStatus: Record<string, number>;
}

/** Counters since start or the last reset. */
export interface SimStats {
  /** When counting started, epoch milliseconds. */
  sinceMs: number;
  /** Non-admin requests answered. */
  totalRequests: number;
  byKind: Record<PathKind, number>;
  /** Keyed by status code as a string, e.g. "200" ("0" = no answer). */
  byStatus: Record<string, number>;
  /** Sum over reels_media requests of the reel ids asked (duplicates included). */
  reelIdsAsked: number;
  /** Profile lookups per (lowercased) username. */
  profileLookups: Record<string, number>;
  /** Per {@link Outcome}. */
  byOutcome: Record<string, number>;
  /** Per session label; requests without a cookie under "anonymous". */
  bySession: Record<string, PartyStats>;
  /** Per client IP. */
  byClient: Record<string, PartyStats>;
  /** Requests that asked about each world username (profile by name, reels/story by id). */
  byUsername: Record<string, number>;
}

function emptyStats(): SimStats {
  const byKind = {} as Record<PathKind, number>;
  for (const kind of PATH_KINDS) byKind[kind] = 0;
  return {
    sinceMs: Date.now(),
    totalRequests: 0,
    byKind,
    byStatus: {},
    reelIdsAsked: 0,
    profileLookups: {},
    byOutcome: {},
    bySession: {},
    byClient: {},
    byUsername: {},
  };
}

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function bumpParty(
  map: Record<string, PartyStats>,
  key: string,
  status: string,
  throttled: boolean,
): void {
  let party = map[key];
  if (!party) {
    party = { requests: 0, throttled: 0, byStatus: {} };
    map[key] = party;
  }
  party.requests++;
  if (throttled) party.throttled++;
  bump(party.byStatus, status);
}

/** The counters and the request log of one simulator. */
export class RequestLog {
  /** The counters since start or the last {@link resetStats}. */
  stats = emptyStats();
  private readonly log: RequestLogEntry[] = [];
  private readonly file: WriteStream | undefined;

  /**
   * Keeps at most `limit` entries in memory and, with `file`, appends each entry there as one
   * JSON line. Throws RangeError for a limit that is not an integer ≥ 1.
   */
  constructor(
    private readonly world: World,
    readonly limit: number,
    file: string | undefined,
    private readonly logger: Logger | undefined,
  ) {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`requestLogLimit must be an integer ≥ 1, got ${limit}`);
    }
    if (file) {
      this.file = createWriteStream(file, { flags: 'a' });
      this.file.on('error', (err) =>
        logger?.warn('request log file error', { error: err.message }),
      );
    }
  }

  /** Counts one request and keeps its entry (memory, file, a debug log record). */
  record(entry: RequestLogEntry, throttledBy: Decision['throttledBy']): void {
    const { stats, world, log, file: logFile, logger, limit: requestLogLimit } = this;
    stats.totalRequests++;
    stats.byKind[entry.kind]++;
    const code = String(entry.status);
    bump(stats.byStatus, code);
    bump(stats.byOutcome, entry.outcome);
    bumpParty(stats.bySession, entry.session ?? 'anonymous', code, throttledBy === 'session');
    bumpParty(stats.byClient, entry.client ?? 'unknown', code, throttledBy === 'ip');
    if (entry.kind === 'reels_media') stats.reelIdsAsked += entry.ids.length;
    if (entry.kind === 'profile' && entry.username !== null) {
      bump(stats.profileLookups, entry.username);
      if (world.byUsername(entry.username)) bump(stats.byUsername, entry.username);
    }
    for (const id of entry.ids) {
      const user = world.byId(id);
      if (user) bump(stats.byUsername, user.username);
    }
    log.push(entry);
    // Trim in batches (1/16 of the cap) so a full log does not cost an O(n) splice per request.
    if (log.length > requestLogLimit + Math.max(1, requestLogLimit >> 4)) {
      log.splice(0, log.length - requestLogLimit);
    }
    if (logFile && !logFile.writableEnded) logFile.write(`${JSON.stringify(entry)}\n`);
    logger?.debug('sim request', {
      kind: entry.kind,
      status: entry.status,
      outcome: entry.outcome,
      session: entry.session,
      client: entry.client,
      latencyMs: entry.latencyMs,
    });
  }

  /** Zeroes the counters (the request log is kept). */
  resetStats(): void {
    this.stats = emptyStats();
  }

  /** The newest `count` entries (the cap at most), oldest first: the entries, not copies. */
  recent(count: number): RequestLogEntry[] {
    const log = this.log;
    return log.slice(Math.max(0, log.length - Math.min(count, this.limit)));
  }

  /** Ends the log file (if any) once everything written reached it. */
  async closeFile(): Promise<void> {
    if (this.file) {
      const file = this.file;
      await new Promise<void>((resolve) => file.end(() => resolve()));
    }
  }
}
