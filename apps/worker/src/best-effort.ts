import type { Logger } from '@storycheck/logger';
import { redactString } from '@storycheck/logger';
import { firstLine } from './dependencies.js';

/**
 * Awaits a step whose failure the caller can do nothing about and must not be stopped by:
 * closing a connection on the way out, a batch-log row that only describes a retry, pausing a
 * worker that is already closing. Every caller says why next to the call. A failure is logged
 * at debug (`best-effort step failed`, with the step and the error's first line, redacted) and
 * resolves to undefined; it never rejects.
 */
export async function bestEffort<T>(
  p: Promise<T>,
  logger: Logger,
  step: string,
): Promise<T | undefined> {
  try {
    return await p;
  } catch (e) {
    logger.debug('best-effort step failed', { step, error: redactString(firstLine(e)) });
    return undefined;
  }
}
