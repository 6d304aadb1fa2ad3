// The mirror failover core, as transcripts (STYLE.md 6). Each section of test/unit/mirror/*.txt
// names the DESIGN.md section it defends.
import { describe, test } from 'node:test';
import { readdirSync } from 'node:fs';
import { loadTranscripts, runSection } from './mirror/transcript.js';

// dist/test/unit/mirror.test.js -> <repo>/test/unit/mirror/
const dir = new URL('../../../test/unit/mirror/', import.meta.url);
for (const f of readdirSync(dir).filter((x) => x.endsWith('.txt')).sort()) {
  describe(f, () => {
    for (const sec of loadTranscripts(new URL(f, dir))) {
      test(sec.name, () => { runSection(sec, `test/unit/mirror/${f}`); });
    }
  });
}
