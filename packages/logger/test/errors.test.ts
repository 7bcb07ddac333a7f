import { runInNewContext } from 'node:vm';
import { coerceError } from '@storycheck/logger';

describe('coerceError', () => {
  it('returns an Error as it is, subclasses and errors of another realm included', () => {
    const e = new RangeError('bad');
    expect(coerceError(e)).toBe(e);
    const foreign = runInNewContext('new TypeError("elsewhere")') as unknown;
    expect(foreign instanceof Error).toBe(false);
    expect(coerceError(foreign)).toBe(foreign);
    expect(coerceError(foreign).message).toBe('elsewhere');
  });

  it('wraps anything else, keeping the value as cause', () => {
    expect(coerceError('plain text').message).toBe('plain text');
    const obj = { message: 'from an object', code: 'X' };
    expect(coerceError(obj).message).toBe('from an object');
    expect(coerceError(obj).cause).toBe(obj);
    expect(coerceError(42).message).toBe('42');
    expect(coerceError(undefined).message).toBe('undefined');
    expect(coerceError(null).message).toBe('null');
    expect(coerceError(Object.create(null)).message).toBe('[object Object]');
  });
});
