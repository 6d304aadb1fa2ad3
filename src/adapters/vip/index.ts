export { type VipManager, type VipAddResult, type VipConfig, KeyedQueue, vipKey } from './vip.js';
export { type Exec, type ExecResult, EXIT_TIMEOUT, execFileBounded, showArgv } from './exec.js';
export { IpVipManager, type IpVipManagerOptions } from './ip.js';
export { FakeVipManager, FakeLan, type FakeVipManagerOptions, type FakeAnnouncement } from './fake.js';
