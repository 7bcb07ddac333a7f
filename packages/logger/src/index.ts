import winston from 'winston';
import { redact, redactString } from './redact.js';
export {
  DEFAULT_SHUTDOWN_MESSAGES,
  onShutdownSignals,
  type ShutdownMessages,
  type ShutdownOptions,
} from './shutdown.js';
export { coerceError } from './errors.js';

export {
  REDACTED,
  redact,
  redactString,
  registerSecret,
  clearRegisteredSecrets,
  isSecretKey,
} from './redact.js';

/** A winston logger; children carry scope labels (`batchId`, `jobId`, `session`, `proxy`). */
export type Logger = winston.Logger;

/** Log record shapes we support: `json` (one object per line) or `pretty` (for humans on a TTY). */
export type LogFormat = 'json' | 'pretty';

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level: error, warn, info, debug. Default `info`. */
  level?: string;
  /** `json` or `pretty`. Default: `pretty` when stderr is a TTY, else `json`. */
  format?: LogFormat;
  /** Scope label of the root logger, e.g. `worker`. */
  scope?: string;
  /** Where records go. Default: stderr (stdout stays clean for command output). */
  stream?: NodeJS.WritableStream;
}

const SPLAT = Symbol.for('splat');

/**
 * winston format that redacts every field of a record, the message included, by key name, by
 * URL/cookie shape and by registered secret value. It runs first in every pipeline, so no
 * transport ever sees a secret.
 */
export const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    const v = (info as Record<string, unknown>)[key];
    if (key === 'level') continue;
    (info as Record<string, unknown>)[key] =
      key === 'message' && typeof v === 'string' ? redactString(v) : redact(v);
  }
  const splat = (info as Record<symbol, unknown>)[SPLAT];
  if (Array.isArray(splat)) (info as Record<symbol, unknown>)[SPLAT] = splat.map((s) => redact(s));
  return info;
});

/**
 * Creates the process's root logger. JSON lines by default, readable colourised lines on a
 * TTY; everything to stderr so that CLI output on stdout stays machine-readable.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? process.stderr;
  const format: LogFormat =
    opts.format ?? ((stream as NodeJS.WriteStream).isTTY ? 'pretty' : 'json');
  const pipeline =
    format === 'json'
      ? winston.format.combine(redactFormat(), winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
          redactFormat(),
          winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
          winston.format.colorize(),
          winston.format.printf((info) => {
            const { level, message, timestamp, scope, ...rest } = info as Record<string, unknown>;
            const extras = Object.entries(rest)
              .filter(([k]) => typeof k === 'string')
              .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(' ');
            return `${String(timestamp)} ${String(level)} ${scope ? `[${String(scope)}] ` : ''}${String(message)}${extras ? ' ' + extras : ''}`;
          }),
        );
  return winston.createLogger({
    level: opts.level ?? 'info',
    format: pipeline,
    defaultMeta: opts.scope ? { scope: opts.scope } : undefined,
    transports: [new winston.transports.Stream({ stream })],
  });
}

/**
 * A child logger carrying labels on every record. Labels are identifiers (batch id, job id,
 * session label, proxy label), never secrets — and they are redacted anyway.
 */
export function withScope(
  logger: Logger,
  labels: Record<string, string | number | undefined>,
): Logger {
  return logger.child(labels);
}
