// Megatron-LM router traces (JSONL): records as megatron/core/transformer/moe/router_trace.py writes them, round trips, and malformed lines named by file and line.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readMegatronJsonl, writeMegatronJsonl } from '../../src/trace/megatron.js';
import type { RoutingTrace } from '../../src/trace/types.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-megatron-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function jsonl(name: string, lines: (object | string)[]): string {
  const file = path.join(dir, name);
  writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

/** A record with the fields RouterTracer._make_index_record writes, then top_indices as _flush_records_to_disk adds it. */
const rec = (step: number, layer: number, rows: number[][], extra: object = {}): object => ({
  step,
  stage: 'pre_dispatch',
  block: 'decoder',
  layer,
  rank: 0,
  num_tokens: rows.length,
  topk: rows[0]?.length ?? 2,
  ...extra,
  top_indices: rows,
});

describe('readMegatronJsonl', () => {
  it("reads router_trace_rank0.jsonl: tokens per layer in order of appearance, layers by number, MTP records skipped", () => {
    const file = jsonl('router_trace_rank0.jsonl', [
      rec(0, 3, [[1, 2], [3, 0]]),
      rec(0, 1, [[4, 5], [6, 7]]),
      { ...rec(0, 1, [[0, 0], [0, 0]]), block: 'mtp', mtp_idx: 0 },
      rec(1, 1, [[7, 6]]),
      rec(1, 3, [[5, 4]]),
    ]);
    const t = readMegatronJsonl(file, { experts: 8 });
    expect([t.N, t.L, t.K, t.E]).toEqual([3, 2, 2, 8]);
    expect(t.layers).toEqual([1, 3]);
    // token 0: layer 1 [4, 5], layer 3 [1, 2]; token 1: [6, 7], [3, 0]; token 2 (step 1): [7, 6], [5, 4]
    expect(Array.from(t.experts)).toEqual([4, 5, 1, 2, 6, 7, 3, 0, 7, 6, 5, 4]);
    expect(t.metadata).toMatchObject({ format: 'megatron-jsonl', records: '4', steps: '2', ranks: '0', skipped_mtp_records: '1', source: file });
  });

  it('the older record without stage and block, and the aliases topk_indices and layer_number', () => {
    const file = jsonl('old.jsonl', [{ step: 0, layer: 0, rank: 0, num_tokens: 1, topk: 2, top_indices: [[0, 1]] }, { layer_number: 2, topk_indices: [[1, 0]] }, '']);
    const t = readMegatronJsonl(file);
    expect([t.N, t.L, t.K, t.E]).toEqual([1, 2, 2, null]);
    expect(Array.from(t.experts)).toEqual([0, 1, 1, 0]);
  });

  it('round-trips a trace bit-exactly (several steps, model layer numbers, −1 slots)', () => {
    const N = 11;
    const L = 3;
    const K = 4;
    const experts = Int16Array.from({ length: N * L * K }, (_, i) => (i % 13 === 5 ? -1 : (i * 29) % 64));
    const trace: RoutingTrace = { N, L, K, E: 64, experts, layers: [2, 5, 9], metadata: {} };
    for (const tokensPerStep of [1, 4, 11, 100]) {
      const file = path.join(dir, `rt${tokensPerStep}.jsonl`);
      writeMegatronJsonl(file, trace, { tokensPerStep });
      const back = readMegatronJsonl(file, { experts: 64 });
      expect([back.N, back.L, back.K, back.E]).toEqual([N, L, K, 64]);
      expect(back.layers).toEqual([2, 5, 9]);
      expect(back.experts).toEqual(experts);
      expect(back.metadata.steps).toBe(String(Math.ceil(N / tokensPerStep)));
    }
  });

  it('malformed lines name the file and line', () => {
    const bad = (name: string, lines: (object | string)[], experts?: number): (() => unknown) => {
      const file = jsonl(name, lines);
      return () => readMegatronJsonl(file, { experts });
    };
    const ok = rec(0, 0, [[0, 1]]);
    expect(bad('json.jsonl', [ok, '{"layer": 0, "top_indices": [[1, 2]'])).toThrow(/megatron: .*json\.jsonl:2: not valid JSON/);
    expect(bad('array.jsonl', [[1, 2]])).toThrow(/array\.jsonl:1: expected a JSON object .* got an array/);
    expect(bad('ragged.jsonl', [ok, rec(1, 0, [[0, 1], [2, 3, 4]])])).toThrow(/ragged\.jsonl:2: token 1 has 3 expert ids, but K = 2 \(from line 1\); the rows are ragged/);
    expect(bad('float.jsonl', [rec(0, 0, [[0, 1.5]])])).toThrow(/float\.jsonl:1: token 0, slot 1: expert id 1\.5 is not an integer/);
    expect(bad('string.jsonl', [rec(0, 0, [[0, '1']] as unknown as number[][])])).toThrow(/string\.jsonl:1: token 0, slot 1: expert id "1" is not an integer/);
    expect(bad('range.jsonl', [ok, ok, rec(0, 0, [[0, 8]])], 8)).toThrow(/range\.jsonl:3: token 0, slot 1: expert id 8 is outside \[-1, 8\) \(E = 8/);
    expect(bad('neg.jsonl', [rec(0, 0, [[-2, 1]])])).toThrow(/neg\.jsonl:1: token 0, slot 0: expert id -2 is outside \[-1, 32768\)/);
    expect(bad('nolayer.jsonl', [{ top_indices: [[0, 1]] }])).toThrow(/nolayer\.jsonl:1: "layer" is undefined, expected a non-negative integer/);
    expect(bad('noids.jsonl', [{ layer: 0 }])).toThrow(/noids\.jsonl:1: "top_indices" is missing/);
    expect(bad('count.jsonl', [{ ...rec(0, 0, [[0, 1]]), num_tokens: 2 }])).toThrow(/count\.jsonl:1: "num_tokens" is 2 but "top_indices" has 1 rows/);
    expect(bad('topk.jsonl', [{ ...rec(0, 0, [[0, 1]]), topk: 3 }])).toThrow(/topk\.jsonl:1: "topk" is 3 but the rows have 2 expert ids/);
    expect(bad('layers.jsonl', [rec(0, 0, [[0, 1], [1, 2]]), rec(0, 4, [[0, 1]])])).toThrow(
      /layers\.jsonl: layer 4 has 1 tokens but layer 0 has 2; every layer needs the same tokens \(tokens per layer: 0: 2, 4: 1\)/,
    );
    expect(bad('empty.jsonl', [''])).toThrow(/empty\.jsonl has no decoder records/);
  });

  it('a line longer than the read chunk (4 MiB) is read whole', () => {
    const rows = Array.from({ length: 600_000 }, (_, t) => [t % 64, (t + 1) % 64]);
    const file = jsonl('long.jsonl', [rec(0, 0, rows), rec(0, 1, rows)]);
    const t = readMegatronJsonl(file, { experts: 64 });
    expect(t.N).toBe(600_000);
    expect(t.experts[2 * 2 * 599_999 + 3]).toBe(0); // token 599999, layer 1, slot 1: 600000 % 64 = 600000 − 9375·64 = 0
  });
});
