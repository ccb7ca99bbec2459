// Synchronous line-by-line file reader: streams in fixed-size chunks, memory O(chunk + longest line).
import { closeSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

/**
 * Yields the lines of a UTF-8 text file without their `\n` (a trailing `\r` is removed too).
 * A final newline does not produce an extra empty line. A leading UTF-8 BOM is dropped.
 * Reads `chunkBytes` at a time, so a 500 MB file never sits in memory as one string.
 */
export function* readLines(path: string, chunkBytes = 1 << 20): Generator<string, void, undefined> {
  const fd = openSync(path, 'r');
  const decoder = new StringDecoder('utf8');
  const buf = Buffer.allocUnsafe(chunkBytes);
  let carry = '';
  let first = true;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, chunkBytes, null);
      let text = n > 0 ? decoder.write(buf.subarray(0, n)) : decoder.end();
      if (first && text.length > 0) {
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        first = false;
      }
      text = carry + text;
      let start = 0;
      for (let nl = text.indexOf('\n', start); nl >= 0; nl = text.indexOf('\n', start)) {
        yield stripCr(text.slice(start, nl));
        start = nl + 1;
      }
      carry = text.slice(start);
      if (n === 0) break;
    }
    if (carry.length > 0) yield stripCr(carry);
  } finally {
    closeSync(fd);
  }
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
