// GLUE TSV readers: SST-2, MRPC and a generic column spec; errors name the file and line.
import { existsSync } from 'node:fs';
import { readLines } from './lines.js';

export interface GlueRow {
  text: string;
  /** second sentence of a pair task (MRPC), absent for single-sentence tasks */
  text2?: string;
  /** integer class label, -1 for unlabeled (test) files */
  label: number;
}

/** A column is named by its header title (needs header: true) or by its 0-based index. */
export type GlueColumn = string | number;

export interface GlueSpec {
  text: GlueColumn;
  text2?: GlueColumn;
  /** absent: every row gets label -1 */
  label?: GlueColumn;
  /** the first line holds column titles */
  header: boolean;
  /** expected column count when there is no header (default: the first line's count) */
  columns?: number;
}

/**
 * Reads a GLUE-style TSV (tab-separated, no quoting, as GLUE ships it). Every line must have the
 * header's column count; labels must be integers. Errors read `glue: <path> line <n>: expected ...`.
 */
export function readGlueTsv(path: string, spec: GlueSpec): GlueRow[] {
  if (!existsSync(path)) throw new Error(`glue: ${path} does not exist (expected a tab-separated GLUE file)`);
  const lines = readLines(path);
  let lineNo = 0;
  let titles: string[] | null = null;
  if (spec.header) {
    const first = lines.next();
    if (first.done) throw new Error(`glue: ${path} is empty (expected a header line)`);
    lineNo = 1;
    titles = first.value.split('\t');
  }
  const resolve = (col: GlueColumn, role: string): number => {
    if (typeof col === 'number') {
      if (!Number.isInteger(col) || col < 0) throw new Error(`glue: ${path}: ${role} column ${col} must be a 0-based integer index`);
      return col;
    }
    if (!titles) throw new Error(`glue: ${path}: ${role} column "${col}" is a name but the spec has header: false (use an index)`);
    const i = titles.indexOf(col);
    if (i < 0) throw new Error(`glue: ${path} line 1: expected a column "${col}" (${role}) in the header, got ${titles.map((t) => JSON.stringify(t)).join(', ')}`);
    return i;
  };
  const textIx = resolve(spec.text, 'text');
  const text2Ix = spec.text2 === undefined ? -1 : resolve(spec.text2, 'text2');
  const labelIx = spec.label === undefined ? -1 : resolve(spec.label, 'label');
  let expected = titles ? titles.length : spec.columns ?? -1;
  const names = titles ? ` (${titles.join(', ')})` : '';
  const rows: GlueRow[] = [];
  for (const line of lines) {
    lineNo++;
    const cols = line.split('\t');
    if (expected < 0) expected = cols.length;
    if (cols.length !== expected) {
      throw new Error(`glue: ${path} line ${lineNo}: expected ${expected} tab-separated columns${names}, got ${cols.length}`);
    }
    const maxIx = Math.max(textIx, text2Ix, labelIx);
    if (maxIx >= cols.length) throw new Error(`glue: ${path} line ${lineNo}: expected at least ${maxIx + 1} columns for the spec, got ${cols.length}`);
    let label = -1;
    if (labelIx >= 0) {
      const raw = cols[labelIx]!.trim();
      if (!/^-?\d+$/.test(raw)) {
        throw new Error(`glue: ${path} line ${lineNo}: expected an integer label in column ${titles ? `"${titles[labelIx]}"` : labelIx}, got ${JSON.stringify(cols[labelIx])}`);
      }
      label = Number.parseInt(raw, 10);
    }
    const row: GlueRow = { text: cols[textIx]!, label };
    if (text2Ix >= 0) row.text2 = cols[text2Ix]!;
    rows.push(row);
  }
  return rows;
}

/** First line of a file (for picking the label column of a train/dev vs test file). */
function headerOf(path: string): string[] {
  if (!existsSync(path)) throw new Error(`glue: ${path} does not exist (expected a tab-separated GLUE file)`);
  const first = readLines(path).next();
  if (first.done) throw new Error(`glue: ${path} is empty (expected a header line)`);
  return first.value.split('\t');
}

/** SST-2: header `sentence\tlabel` (train/dev) or `index\tsentence` (test, label -1). */
export function readSst2(path: string): GlueRow[] {
  const h = headerOf(path);
  return readGlueTsv(path, { text: 'sentence', label: h.includes('label') ? 'label' : undefined, header: true });
}

/** MRPC: header `Quality\t#1 ID\t#2 ID\t#1 String\t#2 String` (test files have `index` instead of Quality: label -1). */
export function readMrpc(path: string): GlueRow[] {
  const h = headerOf(path);
  return readGlueTsv(path, {
    text: '#1 String',
    text2: '#2 String',
    label: h.includes('Quality') ? 'Quality' : undefined,
    header: true,
  });
}
