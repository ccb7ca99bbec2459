// Where the golden files from Hugging Face transformers live: ../shared/fixtures beside the checkout, or MOEKIT_FIXTURES.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Absolute path of a file under the fixtures directory; throws naming where it looked when it is missing. */
export function fixture(rel: string): string {
  const base = process.env.MOEKIT_FIXTURES ?? path.resolve(root, '../shared/fixtures');
  const p = path.join(base, rel);
  if (!existsSync(p)) throw new Error(`fixture ${rel} not found at ${p} (set MOEKIT_FIXTURES to the fixtures directory)`);
  return p;
}
