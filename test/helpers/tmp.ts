// Temporary directories for tests: created under os.tmpdir() with a moekit- prefix and removed after the file's tests.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];
let registered = false;

/** A fresh directory `os.tmpdir()/<prefix>XXXXXX` (prefix e.g. "moekit-train-"), removed in afterAll. */
export function tempDir(prefix: string): string {
  if (!registered) {
    registered = true;
    afterAll(() => {
      for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
    });
  }
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}
