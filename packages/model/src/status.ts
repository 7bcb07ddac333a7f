/**
 * The result statuses (DESIGN.md "Result statuses"), declared once. The lists are in the order
 * the CLI and the board show them; every other list of statuses is derived from these.
 */

/** What a check can answer about a username. */
export const CHECK_STATUSES = ['active', 'none', 'private', 'not_found'] as const;
/** One of {@link CHECK_STATUSES}. */
export type CheckStatus = (typeof CHECK_STATUSES)[number];

/**
 * Final statuses of an item: a check's answer, or `failed` (its error was final, or its
 * attempts ran out). An item reaches exactly one of them, once.
 */
export const FINAL_STATUSES = [...CHECK_STATUSES, 'failed'] as const;
/** One of {@link FINAL_STATUSES}. */
export type FinalStatus = (typeof FINAL_STATUSES)[number];

/** Every status an item row can hold: `pending` until its final status. */
export const ITEM_STATUSES = ['pending', ...FINAL_STATUSES] as const;
/** One of {@link ITEM_STATUSES}. */
export type ItemStatus = (typeof ITEM_STATUSES)[number];
