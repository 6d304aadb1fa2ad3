// The restart-script seam (DESIGN.md 6, STYLE.md 8): interface, real runner, in-memory fake.
export {
  type ScriptName, type ScriptRequest, type ScriptResult, type ScriptRunner,
  SCRIPT_NAMES, LOGS_KEPT, SCRIPT_PATH, isStopScript, scriptEnv, scriptArgv, logName, logsToPrune,
} from './runner.js';
export { ProcessScriptRunner, type ProcessScriptRunnerOptions } from './process.js';
export { FakeScriptRunner, type FakeOutcome, type FakeProcess, type FakeScriptRunnerOptions } from './fake.js';
