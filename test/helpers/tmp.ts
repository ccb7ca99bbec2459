// Temporary directories for tests: created under os.tmpdir() with a moekit- prefix and removed after the file's tests.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];

// registered when a test file imports this module (collection time): a hook registered from inside a running test
// would not attach to the file's suite
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory `os.tmpdir()/<prefix>XXXXXX` (prefix e.g. "moekit-train-"), removed after the file's tests. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}
