// The checker probe seam (STYLE.md 3, 7): interface, real probes (one file per type), fake.
export { type Probe, type ProbeContext, type ProbeFactory, type Check, type CheckResult, bounded, timedOut } from './probe.js';
export { probeFor } from './factory.js';
export { FakeProbe, FakeProbes, type FakeOutcome } from './fake.js';
export { BODY_LIMIT } from './http.js';
