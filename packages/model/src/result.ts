import type { CheckStatus, ItemStatus } from './status.js';

/**
 * The result record of one username: what a check found. One shape from the check to the item
 * row: the checker returns it (with what the check cost), the result cache stores it (as a
 * compact text), the worker records it in Postgres.
 */
export interface StoryResult {
  status: CheckStatus;
  /** The account's id; null when not found, or private and not resolvable. */
  userId: string | null;
  /** Unexpired stories: at least 1 when active, 0 when none, null (unknown) otherwise. */
  storyCount: number | null;
  /** When the newest unexpired story was posted; null unless active. */
  latestStoryAt: Date | null;
  /** When the newest unexpired story expires; null unless active. */
  expiresAt: Date | null;
  /** When the upstream was asked (earlier than now for a cached or shared answer). */
  checkedAt: Date;
}

/**
 * One item as `storycheck results` and the board's downloads print it (CONTRACT.md fields): the
 * row read back, times as ISO strings, pending items included. A shape of its own because it is
 * the output format, not the record: serialised, and with the job's facts (attempts, cached,
 * error).
 */
export interface ResultRecord {
  username: string;
  status: ItemStatus;
  storyCount: number | null;
  latestStoryAt: string | null;
  expiresAt: string | null;
  userId: string | null;
  checkedAt: string | null;
  attempts: number;
  cached: boolean;
  error: string | null;
}
