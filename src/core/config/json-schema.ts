/**
 * JSON Schemas of cluster.yaml and module.yaml for editors (yaml-language-server), generated from
 * the zod schemas that validate the files (schema.ts), so the two cannot drift. They describe the
 * input side: durations and sizes as the strings users write. Cross-file checks (a module's nodes
 * exist, dirs do not overlap, ...) are beyond JSON Schema: `hakit config check` does them.
 * Pure: scripts/gen-schema.ts writes the files, a unit test compares them with the committed ones.
 */
import * as z from 'zod';
import { clusterFileSchema, moduleFileSchema } from './schema.js';

/** Where the committed schemas live, relative to the package root. */
export const SCHEMA_FILES = { cluster: 'schema/cluster.schema.json', module: 'schema/module.schema.json' } as const;

function toJson(schema: z.ZodType): string {
  const json = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    // zod drops `default` metadata set on optional transformed values (durations); put it back.
    override: (ctx) => {
      const meta = z.globalRegistry.get(ctx.zodSchema);
      if (meta?.default !== undefined && ctx.jsonSchema.default === undefined) ctx.jsonSchema.default = meta.default;
    },
  });
  return `${JSON.stringify(json, null, 2)}\n`;
}

/** The text of each schema file (2-space JSON, final newline), keyed as SCHEMA_FILES. */
export function jsonSchemas(): { cluster: string; module: string } {
  return { cluster: toJson(clusterFileSchema), module: toJson(moduleFileSchema) };
}
