#!/usr/bin/env node
/**
 * The board container's healthcheck (`node apps/board/dist/healthcheck.js`, no arguments): exit
 * 0 when `GET /healthz` on BOARD_PORT (default 3000) answers 200 on loopback, 1 otherwise. An
 * exec-form check whose arguments hold no space, because some engines (podman's Docker API)
 * split healthcheck arguments on spaces. Dependency-free; prints no configuration.
 *
 * Its request-and-exit lines repeat those of apps/upstream-sim/src/healthcheck.ts on
 * purpose: a healthcheck imports no workspace package, so it starts in tens of milliseconds.
 */

/** Why a request failed, without its message: fetch's cause code (ECONNREFUSED…) or the name. */
function reason(e: unknown): string {
  const code = (e as { cause?: { code?: unknown } }).cause?.code;
  return typeof code === 'string' ? code : ((e as Error).name ?? 'error');
}

/** How long the request may take before it counts as failed (ms). */
const TIMEOUT_MS = 4_000;

const port = process.env.BOARD_PORT?.trim() || '3000';
fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(TIMEOUT_MS) }).then(
  (res) => {
    process.stdout.write(res.status === 200 ? 'healthy\n' : `unhealthy (HTTP ${res.status})\n`);
    process.exit(res.status === 200 ? 0 : 1);
  },
  (e: unknown) => {
    process.stdout.write(`unhealthy (${reason(e)})\n`);
    process.exit(1);
  },
);
