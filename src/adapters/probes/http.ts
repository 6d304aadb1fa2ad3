/**
 * `http` checker: a GET of the URL must answer the expected status and, when `body` is set, a
 * body (its first BODY_LIMIT bytes) matching the regular expression. Redirects are not followed
 * (a 301 is a 301). HTTPS certificates are not verified: the checker asks "does the application
 * answer", and a health URL often has a self-signed certificate (as keepalived's SSL_GET).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { HttpChecker } from '../../core/config/types.js';
import type { Check, CheckResult } from './probe.js';

/** Bytes of the body read for the `body` match; the rest is not read. */
export const BODY_LIMIT = 64 * 1024;

export function httpCheck(cfg: HttpChecker): Check {
  const re = cfg.body === undefined ? undefined : new RegExp(cfg.body);
  return (signal) => new Promise<CheckResult>((resolve) => {
    let url: URL;
    try {
      url = new URL(cfg.url);
    } catch {
      resolve({ ok: false, detail: `invalid URL ${cfg.url}` });
      return;
    }
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let res: IncomingMessage | undefined;
    let settled = false;
    const done = (r: CheckResult): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      res?.destroy();
      req.destroy();
      resolve(r);
    };
    const onAbort = (): void => done({ ok: false, detail: 'aborted' });
    const req = request(url, {
      method: 'GET', agent: false, rejectUnauthorized: false,
      headers: { 'user-agent': 'hakit-checker', connection: 'close' },
    }, (r) => {
      res = r;
      const status = r.statusCode ?? 0;
      if (status !== cfg.status) {
        done({ ok: false, detail: `HTTP ${status} from ${cfg.url} (expected ${cfg.status})` });
        return;
      }
      if (re === undefined) {
        done({ ok: true, detail: `HTTP ${status}` });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      const judge = (): void => {
        const body = Buffer.concat(chunks).subarray(0, BODY_LIMIT).toString('utf8');
        if (re.test(body)) done({ ok: true, detail: `HTTP ${status}, body matches /${cfg.body ?? ''}/` });
        else done({ ok: false, detail: `HTTP ${status} but the body${size >= BODY_LIMIT ? ` (first ${BODY_LIMIT} bytes)` : ''} does not match /${cfg.body ?? ''}/` });
      };
      r.on('data', (c: Buffer) => {
        chunks.push(c);
        size += c.length;
        if (size >= BODY_LIMIT) judge();
      });
      r.once('end', judge);
      r.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, detail: `reading the body of ${cfg.url}: ${e.code ?? e.message}` }));
    });
    req.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, detail: `GET ${cfg.url}: ${e.code ?? e.message}` }));
    signal.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}
