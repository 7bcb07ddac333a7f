import type { NextFunction, Request, Response } from 'express';

/**
 * bull-board's UI config can carry links (`miscLinks`), but it shows them in a menu behind the
 * user icon, where an operator never looks. This middleware adds the board's own pages to the
 * header of bull-board's entry page, as two plain links: it rewrites the HTML bull-board
 * renders for page routes (never `/api/` or `/static/`), inserting a fixed `<nav>` right after
 * `<body …>`, outside the React root so the app leaves it alone. The links are relative to
 * bull-board's `<base href>`, so they follow the board's base path.
 */

/** The markup inserted into bull-board's page. Constant: nothing from a request goes in. */
export const BOARD_NAV = `<nav id="storycheck-nav" aria-label="storycheck pages" style="position:fixed;top:14px;right:290px;z-index:2147483647;display:flex;gap:8px;font:600 14px system-ui,-apple-system,'Segoe UI',sans-serif"><a href="pool" style="padding:6px 14px;border-radius:6px;background:#24292f;color:#fff;text-decoration:none">Pool</a><a href="batches" style="padding:6px 14px;border-radius:6px;background:#24292f;color:#fff;text-decoration:none">Batches</a></nav>`;

/** Express middleware adding {@link BOARD_NAV} to bull-board's HTML pages. */
export function boardLinks() {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (req.method !== 'GET' || /^\/+(api|static)\//.test(req.path)) {
      next();
      return;
    }
    const send = res.send.bind(res);
    res.send = ((body?: unknown) => {
      if (typeof body === 'string' && body.includes('id="__UI_CONFIG__"')) {
        body = body.replace(/<body[^>]*>/, (tag) => `${tag}\n${BOARD_NAV}`);
      }
      return send(body);
    }) as Response['send'];
    next();
  };
}
