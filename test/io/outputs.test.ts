// Output checks before long work: checkWritableDir/checkWritableFile on missing, file-vs-directory, ENOTDIR and
// read-only destinations (a read-only tmpfs where mount is permitted), and fsErrorWords.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkWritableDir, checkWritableFile, fsErrorWords } from '../../src/io/outputs.js';
import { mountReadOnly, unmount } from '../helpers/readonly.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'moekit-outputs-'));
const file = path.join(tmp, 'plain.txt');
writeFileSync(file, 'x');

/** A read-only tmpfs at tmp/ro, or the reason there is none (mount needs root with CAP_SYS_ADMIN). */
const ro = path.join(tmp, 'ro');
const roSkip = mountReadOnly(ro, 'test/io/outputs');

afterAll(() => {
  unmount(ro, roSkip);
  rmSync(tmp, { recursive: true, force: true });
});

const thrown = (f: () => void): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};

describe('checkWritableDir', () => {
  it('creates a missing directory and leaves no probe file behind', () => {
    const d = path.join(tmp, 'a', 'b', 'c');
    checkWritableDir(d, '--out');
    expect(existsSync(d)).toBe(true);
    expect(readdirSync(d)).toEqual([]);
    checkWritableDir(d, '--out'); // existing and empty: fine again
    expect(readdirSync(d)).toEqual([]);
  });

  it('a path below a regular file: ENOTDIR in words, naming the file', () => {
    const d = path.join(file, 'sub');
    const msg = thrown(() => checkWritableDir(d, '--out'));
    expect(msg).toContain(`--out ${d}: cannot write there`);
    expect(msg).toContain('a parent is a file, not a directory (ENOTDIR)');
    expect(msg).toContain(file);
  });

  it('a regular file where a directory is expected', () => {
    expect(thrown(() => checkWritableDir(file, '--out'))).toBe(`--out ${file}: expected a directory, found a file`);
  });

  it.skipIf(roSkip !== null)('a read-only directory, and a missing one below it, say read-only (EROFS), not ENOENT', () => {
    let msg = thrown(() => checkWritableDir(ro, '--out'));
    expect(msg).toBe(`--out ${ro}: cannot write there (read-only file system (EROFS))`);
    const deep = path.join(ro, 'x', 'y');
    msg = thrown(() => checkWritableDir(deep, '--out'));
    expect(msg).toContain(`--out ${deep}: cannot write there (read-only file system (EROFS) at ${ro})`);
    expect(msg).not.toContain('ENOENT');
  });
});

describe('checkWritableFile', () => {
  it('a file in a missing directory: the directory is created, the file is not', () => {
    const f = path.join(tmp, 'reports', 'r.html');
    checkWritableFile(f, '--html');
    expect(existsSync(path.dirname(f))).toBe(true);
    expect(existsSync(f)).toBe(false);
    writeFileSync(f, 'old');
    checkWritableFile(f, '--html'); // an existing file may be replaced
  });

  it('a directory where a file is expected (EISDIR case)', () => {
    const d = path.join(tmp, 'isdir');
    mkdirSync(d);
    expect(thrown(() => checkWritableFile(d, '--html'))).toBe(`--html ${d}: expected a file path, found a directory`);
  });

  it('a file below a regular file: ENOTDIR, the message naming the file asked for', () => {
    const f = path.join(file, 'sub', 'r.html');
    const msg = thrown(() => checkWritableFile(f, '--html'));
    expect(msg).toContain(`--html ${f}: cannot write there`);
    expect(msg).toContain('(ENOTDIR)');
  });

  it.skipIf(roSkip !== null)('a file in a read-only directory', () => {
    const f = path.join(ro, 'r.html');
    expect(thrown(() => checkWritableFile(f, '--html'))).toBe(`--html ${f}: cannot write there (read-only file system (EROFS))`);
  });
});

describe('fsErrorWords', () => {
  const err = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: something`), { code });
  it('names the common codes in words with the code', () => {
    expect(fsErrorWords(err('EROFS'))).toBe('read-only file system (EROFS)');
    expect(fsErrorWords(err('ENOSPC'))).toBe('no space left on device (ENOSPC)');
    expect(fsErrorWords(err('EACCES'))).toBe('permission denied (EACCES)');
    expect(fsErrorWords(err('ENOTDIR'))).toBe('a parent is a file, not a directory (ENOTDIR)');
    expect(fsErrorWords(err('ENOENT'))).toBe('no such file or directory (ENOENT)');
  });
  it('a real EISDIR from writing onto a directory; other errors keep their message', () => {
    let e: unknown;
    try {
      writeFileSync(tmp, 'x');
    } catch (x) {
      e = x;
    }
    expect(fsErrorWords(e)).toBe('it is a directory (EISDIR)');
    expect(fsErrorWords(new Error('boom'))).toBe('boom');
    expect(fsErrorWords('plain')).toBe('plain');
  });
});
