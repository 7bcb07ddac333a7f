#!/usr/bin/env node
/**
 * The simulator container's healthcheck: `node apps/upstream-sim/dist/healthcheck.js [URL]`
 * exits 0 when `GET URL` answers 200, 1 otherwise. URL defaults to the admin health route on the
 * default port, `http://127.0.0.1:4100/__sim/health`. One argument without spaces, because some
 * engines (podman's Docker API) split exec-form healthcheck arguments on spaces.
 *
 * Its request-and-exit lines repeat those of apps/board/src/healthcheck.ts on
 * purpose: a healthcheck imports no workspace package, so it starts in tens of milliseconds.
 */

/** Why a request failed, without its message: fetch's cause code (ECONNREFUSED…) or the name. */
function reason(e: unknown): string {
  const code = (e as { cause?: { code?: unknown } }).cause?.code;
  return typeof code === 'string' ? code : ((e as Error).name ?? 'error');
}

/** How long the request may take before it counts as failed (ms). */
const TIMEOUT_MS = 4_000;

const url = process.argv[2] ?? 'http://127.0.0.1:4100/__sim/health';
fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) }).then(
  (res) => {
    process.stdout.write(res.status === 200 ? 'healthy\n' : `unhealthy (HTTP ${res.status})\n`);
    process.exit(res.status === 200 ? 0 : 1);
  },
  (e: unknown) => {
    process.stdout.write(`unhealthy (${reason(e)})\n`);
    process.exit(1);
  },
);
