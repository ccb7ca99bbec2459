// GLUE TSV reader tests on small files written to a temp dir: SST-2, MRPC, generic spec, error messages.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readGlueTsv, readMrpc, readSst2 } from '../../src/io/glue.js';

const dir = mkdtempSync(join(tmpdir(), 'moekit-glue-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('readSst2', () => {
  it('reads sentence/label rows after the header', () => {
    const p = file('sst2-train.tsv', 'sentence\tlabel\nhide new secretions from the parental units \t0\ncontains no wit , only labored gags \t0\nthat loves its characters \t1\n');
    expect(readSst2(p)).toEqual([
      { text: 'hide new secretions from the parental units ', label: 0 },
      { text: 'contains no wit , only labored gags ', label: 0 },
      { text: 'that loves its characters ', label: 1 },
    ]);
  });
  it('gives label -1 for a test file without labels, and handles CRLF and no final newline', () => {
    const p = file('sst2-test.tsv', 'index\tsentence\r\n0\tit \'s a charming journey .\r\n1\tunflinchingly bleak');
    expect(readSst2(p)).toEqual([
      { text: "it 's a charming journey .", label: -1 },
      { text: 'unflinchingly bleak', label: -1 },
    ]);
  });
  it('names path and line of a row with the wrong column count', () => {
    const p = file('sst2-bad.tsv', 'sentence\tlabel\ngood\t1\nno label here\n');
    expect(() => readSst2(p)).toThrow(`glue: ${p} line 3: expected 2 tab-separated columns (sentence, label), got 1`);
  });
  it('names path, line and value of a non-integer label', () => {
    const p = file('sst2-label.tsv', 'sentence\tlabel\ngood\t1\nbad\tneg\n');
    expect(() => readSst2(p)).toThrow(`glue: ${p} line 3: expected an integer label in column "label", got "neg"`);
  });
  it('names a missing file', () => {
    const p = join(dir, 'SST-2', 'train.tsv');
    expect(() => readSst2(p)).toThrow(`glue: ${p} does not exist`);
  });
});

describe('readMrpc', () => {
  it('reads sentence pairs with a BOM-prefixed header', () => {
    const p = file(
      'mrpc-train.tsv',
      '\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tAmrozi accused his brother .\tReferring to him , Amrozi accused his brother .\n0\t2108705\t2108831\tYucaipa owned Dominick \'s .\tYucaipa bought Dominick \'s in 1995 .\n',
    );
    expect(readMrpc(p)).toEqual([
      { text: 'Amrozi accused his brother .', text2: 'Referring to him , Amrozi accused his brother .', label: 1 },
      { text: "Yucaipa owned Dominick 's .", text2: "Yucaipa bought Dominick 's in 1995 .", label: 0 },
    ]);
  });
  it('reads an unlabeled test file as label -1', () => {
    const p = file('mrpc-test.tsv', 'index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1089874\t1089925\tPCCW said .\tPCCW says .\n');
    expect(readMrpc(p)).toEqual([{ text: 'PCCW said .', text2: 'PCCW says .', label: -1 }]);
  });
  it('names path and line of a short row', () => {
    const p = file('mrpc-bad.tsv', 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tonly one sentence\n');
    expect(() => readMrpc(p)).toThrow(`glue: ${p} line 2: expected 5 tab-separated columns (Quality, #1 ID, #2 ID, #1 String, #2 String), got 4`);
  });
});

describe('readGlueTsv (generic spec)', () => {
  it('reads columns by index without a header', () => {
    const p = file('cola.tsv', 'gj04\t1\t\tOur friends won\'t buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n');
    expect(readGlueTsv(p, { text: 3, label: 1, header: false })).toEqual([
      { text: "Our friends won't buy this analysis.", label: 1 },
      { text: 'They drank the pub.', label: 0 },
    ]);
  });
  it('reads columns by name, pairs, and no label', () => {
    const p = file('rte.tsv', 'index\tsentence1\tsentence2\n0\tA dog runs.\tAn animal moves.\n');
    expect(readGlueTsv(p, { text: 'sentence1', text2: 'sentence2', header: true })).toEqual([
      { text: 'A dog runs.', text2: 'An animal moves.', label: -1 },
    ]);
  });
  it('uses the first line to fix the column count without a header', () => {
    const p = file('nohdr.tsv', 'a\t1\nb\t0\textra\n');
    expect(() => readGlueTsv(p, { text: 0, label: 1, header: false })).toThrow(`glue: ${p} line 2: expected 2 tab-separated columns, got 3`);
  });
  it('names a column missing from the header', () => {
    const p = file('hdr.tsv', 'sentence\tlabel\nx\t1\n');
    expect(() => readGlueTsv(p, { text: 'question', label: 'label', header: true })).toThrow(
      `glue: ${p} line 1: expected a column "question" (text) in the header, got "sentence", "label"`,
    );
  });
});
