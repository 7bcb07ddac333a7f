import { types } from 'node:util';

/**
 * The Error for a thrown value of unknown type (`catch (e)`): an Error as it is (also one from
 * another realm, e.g. a node core error seen under jest's module VM), anything else wrapped in
 * a new Error whose message is the value's own `message` (a thrown plain object), the string
 * thrown, or its String form, with the value as `cause`.
 */
export function coerceError(e: unknown): Error {
  if (e instanceof Error || types.isNativeError(e)) return e;
  const own = (e as { message?: unknown } | null | undefined)?.message;
  let message: string;
  if (typeof own === 'string') message = own;
  else if (typeof e === 'string') message = e;
  else {
    try {
      message = String(e);
    } catch {
      message = Object.prototype.toString.call(e);
    }
  }
  return new Error(message, { cause: e });
}
