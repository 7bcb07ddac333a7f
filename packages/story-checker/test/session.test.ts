import { checkSessionLocally } from '../src/index.js';

describe('checkSessionLocally', () => {
  it.each([
    { s: { sessionid: '1234567890%3AAbCdEfGhIjKl%3A12%3AAYd', dsUserId: '1234567890' }, ok: true },
    { s: { sessionid: '1234567890:AbCdEfGhIjKl:12:AYdxyz' }, ok: true },
    { s: { sessionid: 'short' }, ok: false, reason: /too short/ },
    { s: { sessionid: 'AbCdEfGhIjKlMnOpQrStUvWx' }, ok: false, reason: /account id/ },
    {
      s: { sessionid: '1234567890%3AAbCdEfGhIjKl%3A12', dsUserId: '999' },
      ok: false,
      reason: /another account/,
    },
    { s: { sessionid: '1234567890%3AAbCd EfGhIjKl%3A12' }, ok: false, reason: /whitespace/ },
  ])('$s.sessionid → ok=$ok', ({ s, ok, reason }) => {
    const v = checkSessionLocally(s);
    expect(v.ok).toBe(ok);
    if (!v.ok && reason) expect(v.reason).toMatch(reason);
  });
});
