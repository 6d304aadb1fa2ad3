export type { Rfs, RfsStatus, RfsRequest, RfsReply } from './rfs.js';
export { type RfsMode, RFS_MODES, type RfsStats, type OpStats, PassthroughFs } from './passthrough.js';
export { type Replicator, LocalOnlyReplicator, RecordingReplicator } from './replicator.js';
export { type InPlaceMount, mountInPlace, MOUNT_OPTIONS, RFS_FSTYPE } from './mount.js';
export { RfsProcess, RFS_MAIN, type RfsProcessOptions } from './process.js';
export { recoverStaleMount, rfsMountPoints } from './recover.js';
export { FakeRfs } from './fake.js';
