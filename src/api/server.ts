/**
 * The control API (fastify). Served on the daemon's unix socket for the CLI; the console will
 * use the same routes over HTTPS.
 *
 *   GET  /v1/status[?module=NAME]          -> StatusReport (the `status --json` format)
 *   POST /v1/modules/:module/commands      {cmd, fullsync?, on?} -> { message }
 *   GET  /v1/modules/:module/log[?lines=N] -> { entries: LogEntry[] }
 *   POST /v1/modules/:module/checkers      {on, name?} -> { message }
 *
 * Errors answer `{ code, message, details }` with 400 (bad request), 404 (no module),
 * 409 (command refused in the current state), 501 (not implemented), 500 (internal).
 * The routes validate their input and never half-apply a command: the controller is called only
 * with a well-formed request.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import { HakitError, isHakitError } from '../core/errors.js';
import type { LogEntry, StatusReport } from './types.js';

export const MODULE_COMMANDS = ['start', 'stop', 'restart', 'stopstart', 'swap', 'prim', 'second', 'failover', 'verify'] as const;
export type ModuleCommand = (typeof MODULE_COMMANDS)[number];

export interface CommandRequest {
  cmd: ModuleCommand;
  fullsync?: boolean;
  on?: boolean;
}

/** What the API needs from the daemon. Implementations throw HakitError for refusals. */
export interface Controller {
  status(module?: string): StatusReport;
  /** `differ`: for `verify`, the paths where the replicas differ (one line each). */
  command(module: string, req: CommandRequest): Promise<{ message: string; differ?: string[] }>;
  log(module: string, lines: number): LogEntry[];
  checker(module: string, on: boolean, name?: string): { message: string };
}

const commandBody = z
  .object({
    cmd: z.enum(MODULE_COMMANDS),
    fullsync: z.boolean().optional(),
    on: z.boolean().optional(),
  })
  .strict()
  .refine((b) => b.cmd !== 'failover' || typeof b.on === 'boolean', { message: '"failover" needs "on": true or false', path: ['on'] })
  .refine((b) => b.fullsync === undefined || b.cmd === 'prim' || b.cmd === 'second', { message: '"fullsync" goes with prim or second only', path: ['fullsync'] });

const STATUS_OF: Record<string, number> = {
  HAKIT_E_BAD_REQUEST: 400,
  HAKIT_E_USAGE: 400,
  HAKIT_E_NO_MODULE: 404,
  HAKIT_E_NO_CHECKER: 404,
  HAKIT_E_BAD_STATE: 409,
  HAKIT_E_NOT_IMPLEMENTED: 501,
};

export function buildApi(ctl: Controller, opts: { logger?: boolean } = {}): FastifyInstance {
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: 64 * 1024 });

  app.setErrorHandler((err, _req, reply) => {
    if (isHakitError(err)) {
      void reply.code(STATUS_OF[err.code] ?? 500).send(err.toJSON());
      return;
    }
    const e = err as { statusCode?: number; message?: string };
    if (e.statusCode && e.statusCode < 500) {
      const bad = new HakitError('BAD_REQUEST', { detail: e.message ?? 'malformed request' });
      void reply.code(400).send(bad.toJSON());
      return;
    }
    const internal = new HakitError('INTERNAL', { detail: e.message ?? String(err) });
    void reply.code(500).send(internal.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new HakitError('BAD_REQUEST', { detail: `no route ${req.method} ${req.url}` });
    void reply.code(404).send(e.toJSON());
  });

  app.get('/v1/status', async (req) => {
    const q = z.object({ module: z.string().min(1).optional() }).safeParse(req.query);
    if (!q.success) throw new HakitError('BAD_REQUEST', { detail: 'module must be a non-empty name' });
    return ctl.status(q.data.module);
  });

  app.post('/v1/modules/:module/commands', async (req) => {
    const { module } = req.params as { module: string };
    const parsed = commandBody.safeParse(req.body ?? {});
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
      throw new HakitError('BAD_REQUEST', { detail });
    }
    return ctl.command(module, parsed.data);
  });

  app.post('/v1/modules/:module/checkers', async (req) => {
    const { module } = req.params as { module: string };
    const parsed = z.object({ on: z.boolean(), name: z.string().min(1).max(63).optional() }).strict().safeParse(req.body ?? {});
    if (!parsed.success) {
      throw new HakitError('BAD_REQUEST', { detail: parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') });
    }
    return ctl.checker(module, parsed.data.on, parsed.data.name);
  });

  app.get('/v1/modules/:module/log', async (req) => {
    const { module } = req.params as { module: string };
    const q = z.object({ lines: z.coerce.number().int().min(1).max(10_000).default(50) }).safeParse(req.query);
    if (!q.success) throw new HakitError('BAD_REQUEST', { detail: 'lines must be a whole number from 1 to 10000' });
    return { entries: ctl.log(module, q.data.lines) };
  });

  return app;
}
