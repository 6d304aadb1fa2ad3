/**
 * The host's boot id (Linux: /proc/sys/kernel/random/boot_id, a new random UUID at every boot):
 * how the daemon tells that its host restarted since it last wrote a module's state (a crash of
 * the host loses what was only in the page cache). HAKIT_BOOT_ID_FILE names another file to read
 * (the testbed gives each simulated host its own, and a new one at each simulated crash).
 * '' when it cannot be read: host restarts are then not detected.
 */
import { readFileSync } from 'node:fs';

export function currentBootId(file = process.env.HAKIT_BOOT_ID_FILE ?? '/proc/sys/kernel/random/boot_id'): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}
