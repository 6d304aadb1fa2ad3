/**
 * The CLI's client of the daemon's control API (HTTP over the unix socket).
 * Every call resolves to the decoded JSON body, or rejects with a HakitError: NO_DAEMON when
 * nothing listens on the socket, or the error the daemon returned (code and message kept).
 */
import http from 'node:http';
import { HakitError } from '../core/errors.js';

export interface ApiErrorBody {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

/** An error answered by the daemon; its code and message are shown to the user as they are. */
export class RemoteError extends Error {
  constructor(readonly code: string, message: string, readonly exit: number) {
    super(message);
    this.name = 'RemoteError';
  }
}

export class ApiClient {
  constructor(private readonly socketPath: string, private readonly timeoutMs = 30_000) {}

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  private request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          path,
          method,
          timeout: this.timeoutMs,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text.length ? JSON.parse(text) : {};
            } catch {
              reject(new HakitError('INTERNAL', { detail: `the daemon answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}` }));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const e = json as ApiErrorBody;
              reject(new RemoteError(e.code ?? 'HAKIT_E_INTERNAL', e.message ?? text, exitFor(res.statusCode ?? 500)));
              return;
            }
            resolve(json as T);
          });
        },
      );
      req.on('timeout', () => req.destroy(new HakitError('PEER_TIMEOUT', { peer: 'the local daemon', timeout: `${this.timeoutMs} ms` })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof HakitError) reject(err);
        else if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'EACCES') reject(new HakitError('NO_DAEMON', { socket: this.socketPath }, { cause: err }));
        else reject(new HakitError('INTERNAL', { detail: err.message }, { cause: err }));
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}

function exitFor(status: number): number {
  if (status === 404) return 5;
  if (status === 409) return 6;
  if (status === 400) return 2;
  return 1;
}
