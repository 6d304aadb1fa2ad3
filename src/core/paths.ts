/** Default locations of a node's files; every one can be overridden by a flag or variable. */
export const DEFAULT_CONFIG_DIR = '/etc/hakit';
export const DEFAULT_STATE_DIR = '/var/lib/hakit';
export const DEFAULT_SOCKET = '/run/hakit/hakit.sock';
/** Environment variables that replace the flags (DESIGN.md 6). */
export const ENV_SOCKET = 'HAKIT_SOCKET';
export const ENV_CONFIG_DIR = 'HAKIT_CONFIG_DIR';
export const ENV_STATE_DIR = 'HAKIT_STATE_DIR';
