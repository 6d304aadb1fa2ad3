// Defends issue 2 item 4 (a JSON Schema for editors generated from the same schema as the
// parser): the committed schema/*.json equal freshly generated ones, so they never drift. After
// changing src/core/config/schema.ts run `npm run build && npm run schema` and commit.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMA_FILES, jsonSchemas } from '../../src/core/config/json-schema.js';
import { DEFAULTS } from '../../src/core/config/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const fresh = jsonSchemas();

for (const key of ['cluster', 'module'] as const) {
  test(`${SCHEMA_FILES[key]} is up to date (run npm run schema and commit if not)`, () => {
    assert.equal(readFileSync(join(root, SCHEMA_FILES[key]), 'utf8'), fresh[key]);
  });
}

test('the schemas refuse unknown keys, require the required keys and carry defaults and unit patterns', () => {
  const cluster = JSON.parse(fresh.cluster) as { additionalProperties: boolean; required: string[] };
  assert.equal(cluster.additionalProperties, false);
  assert.deepEqual(cluster.required, ['cluster', 'networks', 'nodes']);
  type Obj = { properties: Record<string, { default?: unknown; pattern?: string; properties?: Record<string, { default?: unknown; pattern?: string }> }>; required: string[]; additionalProperties: boolean };
  const module = JSON.parse(fresh.module) as { oneOf: Obj[] };
  const [mirror, farm] = module.oneOf;
  assert.ok(mirror && farm);
  assert.deepEqual(mirror.required, ['kind', 'nodes']);
  assert.deepEqual(farm.required, ['kind', 'nodes', 'vip']);
  assert.equal(mirror.additionalProperties, false);
  assert.equal(mirror.properties.failover?.default, DEFAULTS.failover);
  assert.equal(mirror.properties.heartbeat?.properties?.pulse?.default, '250ms');
  assert.equal(mirror.properties.replication?.properties?.zone_size?.default, '1MiB');
  assert.equal(mirror.properties.heartbeat?.properties?.timeout?.pattern, '^[0-9]+(ms|s|m|h)$');
});
