// The checker framework's decisions (STYLE.md 7): hysteresis, admin switch, schedule. Pure.
// The I/O (probes) is in src/adapters/probes; maxloop is counted by the mirror core (mirror/maxloop.ts).
export {
  type CheckResult, type CheckerStatus, type Hysteresis, type CheckerState, type CheckerChange, type Observed, type CheckerView,
  initialState, observe, setEnabled, setActive, viewOf,
} from './hysteresis.js';
export {
  type CheckerRole, type CheckerStates, type Schedule,
  roleOf, classOf, runsIn, started, initStates, withRole, schedule,
} from './schedule.js';
