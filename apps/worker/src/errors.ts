/** The worker's own errors: budget waits, no usable session, a missing secret key. */

/** No budget now: the job goes back to the queue for `waitMs` without spending an attempt. */
export class LeaseWaitError extends Error {
  override name = 'LeaseWaitError';
  readonly code = 'budget_wait';
  constructor(readonly waitMs: number) {
    super(`no session or proxy has budget for ${waitMs} ms`);
  }
}

/** Every session is invalid, challenged, suspended or disabled: nothing can be sent. */
export class NoSessionError extends Error {
  override name = 'NoSessionError';
  readonly code = 'session_unavailable';
  constructor() {
    super('no usable session: every session is invalid, challenged, suspended or disabled');
  }
}

/**
 * STORYCHECK_SECRET_KEY is not set, but Postgres holds something encrypted under it (session
 * cookies, a proxy password): the worker cannot send as those sessions or through those
 * proxies, so it does not start. The message says what is stored; never a secret.
 */
export class MissingSecretKeyError extends Error {
  override name = 'MissingSecretKeyError';
  readonly code = 'secret_key_missing';
  constructor(what: string) {
    super(`STORYCHECK_SECRET_KEY is not set, but ${what}`);
  }
}
