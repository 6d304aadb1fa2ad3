/** hakit's configuration: parse, validate and type a config dir's texts (pure). */
export { parseConfig, formatIssue, compareIssues } from './parse.js';
export { DEFAULTS } from './defaults.js';
export { clusterFileSchema, moduleFileSchema, CHECKER_TYPES } from './schema.js';
export { parseDuration, parseSize, parseBandwidth, formatDuration, formatSize, type UnitResult } from './units.js';
export { parseIp, parseIPv4, parseIPv6, parseIpPrefix, parseHostPort, type IpAddress, type IpPrefix, type HostPort, type IpResult } from './ip.js';
export type * from './types.js';
