import { Writable } from 'node:stream';
import { loadConfig, type Config } from '@storycheck/config';
import { createLogger, type Logger } from '@storycheck/logger';

/** Redis the tests run against (a real one, never a mock). */
export const REDIS_URL = 'redis://127.0.0.1:6379';

/** A logger that drops every record, so test output stays readable. */
export function silentLogger(): Logger {
  const sink = new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  return createLogger({ level: 'error', format: 'json', stream: sink });
}

/** Config for a board on a free loopback port, under the test file's own prefix. */
export function boardConfig(prefix: string, env: Record<string, string> = {}): Config {
  return loadConfig({ REDIS_URL, STORYCHECK_PREFIX: prefix, BOARD_PORT: '0', ...env });
}

/** `Authorization` header value for Basic credentials. */
export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Open TCP handles (servers and sockets) of this process, for leak checks. */
export function tcpHandles(): number {
  return process
    .getActiveResourcesInfo()
    .filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length;
}

/** Polls `check` every 20 ms until it holds or `timeoutMs` passes; returns the last result. */
export async function eventually(check: () => boolean, timeoutMs = 2_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}
