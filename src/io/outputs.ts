// Output destinations checked before long work (a probe file created and removed), and file-system errors in words.
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const WORDS: Record<string, string> = {
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a parent is a file, not a directory',
  EISDIR: 'it is a directory',
  EEXIST: 'it already exists',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

/** "read-only file system (EROFS)" for a Node file-system error; the message itself for anything else. */
export function fsErrorWords(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code && WORDS[code]) return `${WORDS[code]} (${code})`;
  if (code === 'ENOENT') return `no such file or directory (ENOENT)`;
  return e instanceof Error ? e.message : String(e);
}

/** The nearest existing ancestor of `p` (itself when it exists). */
function existingAncestor(p: string): string {
  let cur = path.resolve(p);
  while (!existsSync(cur)) {
    const up = path.dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  return cur;
}

/**
 * Makes sure files can be written into directory `dir` (created when missing): creates and removes a probe file.
 * Throws `${what} DIR: cannot write there (read-only file system (EROFS))` and the like, naming the real cause even
 * where mkdir would only say ENOENT.
 */
export function checkWritableDir(dir: string, what: string): void {
  const fail = (e: unknown, where: string): never => {
    throw new Error(`${what} ${dir}: cannot write there (${fsErrorWords(e)}${where === path.resolve(dir) ? '' : ` at ${where}`})`);
  };
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`${what} ${dir}: expected a directory, found a file`);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    // mkdir -p below an unwritable parent reports the first missing level; probe the deepest existing one instead
    const anc = existingAncestor(dir);
    try {
      probe(anc);
    } catch (pe) {
      fail(pe, anc);
    }
    fail(e, path.resolve(dir));
  }
  try {
    probe(dir);
  } catch (e) {
    fail(e, path.resolve(dir));
  }
}

/** Makes sure `file` can be written: its directory is writable (created when missing) and it is not a directory. */
export function checkWritableFile(file: string, what: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) throw new Error(`${what} ${file}: expected a file path, found a directory`);
  const dir = path.dirname(path.resolve(file));
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new Error(`${what} ${file}: cannot write there (${WORDS.ENOTDIR} (ENOTDIR) at ${dir})`);
  try {
    checkWritableDir(dir, what);
  } catch (e) {
    throw new Error((e as Error).message.replace(`${what} ${dir}:`, `${what} ${file}:`));
  }
}

function probe(dir: string): void {
  const f = path.join(dir, `.moekit-probe-${process.pid}-${Date.now().toString(36)}`);
  writeFileSync(f, 'probe');
  rmSync(f, { force: true });
}
