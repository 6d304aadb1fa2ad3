/**
 * `npm run schema`: writes schema/cluster.schema.json and schema/module.schema.json from the zod
 * schemas (src/core/config/json-schema.ts). Run it after changing src/core/config/schema.ts and
 * commit the result; test/unit/config-schema.test.ts fails while the committed files are stale.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA_FILES, jsonSchemas } from '../src/core/config/json-schema.js';

// dist/scripts/gen-schema.js -> the package root.
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const texts = jsonSchemas();
for (const key of ['cluster', 'module'] as const) {
  const file = join(root, SCHEMA_FILES[key]);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, texts[key]);
  process.stdout.write(`wrote ${SCHEMA_FILES[key]}\n`);
}
