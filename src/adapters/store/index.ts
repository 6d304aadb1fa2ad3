export { type StateStore, checkStateName, parseState, serializeState } from './store.js';
export { FileStateStore, moduleStateDir } from './file.js';
export { MemoryStateStore, type MemoryDisk } from './memory.js';
export { ChangeLog, FileLogMedium, MemoryLogMedium, type LogMedium, openFileChangeLog } from './changelog.js';
