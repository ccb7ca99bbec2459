// A read-only directory for output tests: a read-only tmpfs mounted on an empty directory (root with CAP_SYS_ADMIN),
// or the reason there is none, so the tests that need it skip with that reason printed.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

/** Mounts a read-only tmpfs on `dir` (created when missing); returns null, or why it could not (then tests skip). */
export function mountReadOnly(dir: string, who: string): string | null {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    return null;
  } catch (e) {
    const why = String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim() || 'mount failed';
    console.warn(`${who}: read-only destination cases skipped: cannot mount a read-only tmpfs (${why})`);
    return why;
  }
}

/** Undoes mountReadOnly (when it mounted). */
export function unmount(dir: string, skipped: string | null): void {
  if (skipped === null) execFileSync('umount', [dir]);
}
