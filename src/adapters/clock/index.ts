export type { Clock, TimerHandle } from './clock.js';
export { sleepOn } from './clock.js';
export { RealClock, realClock } from './real.js';
export { FakeClock, type FakeClockOptions } from './fake.js';
