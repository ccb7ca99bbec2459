// moekit analyse end to end: a small .npy, the same trace as Megatron-LM JSONL and as a moekit trace, described by the CLI in a child process; bad flags refused.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeNpy } from '../../src/trace/npy.js';
import { writeMegatronJsonl } from '../../src/trace/megatron.js';
import { TraceWriter } from '../../src/trace/format.js';
import { analyse, reportJson } from '../../src/trace/analyse.js';
import type { RoutingTrace } from '../../src/trace/types.js';
import { cli, cliError } from '../helpers/cli.js';


interface Json {
  trace: { N: number; L: number; K: number; E: number; source: string; format: string };
  layers: { layer: number; routed: number; counts: number[]; max_over_mean: number; cv: number; gini: number; entropy_bits: number; hot: number[] }[];
  activated: { batch: number; batches: number; mean_unique: number[]; theory_uniform: number; tokens_per_expert: number[] }[];
  sequences: { count: number; max_over_mean: number[]; cv: number[] } | null;
}

/**
 * N = 6 tokens, L = 2, K = 2, E = 4:
 *   token   layer 0   layer 1
 *     0     [0, 1]    [2, 3]
 *     1     [0, 2]    [2, 3]
 *     2     [0, 1]    [2, −1]
 *     3     [3, −1]   [−1, −1]
 *     4     [1, 2]    [0, 1]
 *     5     [0, 3]    [1, 2]
 */
// prettier-ignore
const ids = Int16Array.from([0, 1, 2, 3, 0, 2, 2, 3, 0, 1, 2, -1, 3, -1, -1, -1, 1, 2, 0, 1, 0, 3, 1, 2]);
const trace: RoutingTrace = { N: 6, L: 2, K: 2, E: 4, experts: ids, layers: [0, 1], metadata: {} };

let dir = '';
let npy = '';
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'moekit-cli-analyse-'));
  npy = path.join(dir, 'routing.npy');
  writeNpy(npy, BigInt64Array.from(ids, (v) => BigInt(v)), [6, 2, 2], '<i8');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('moekit analyse', () => {
  it('--json on a .npy: one JSON object with the loads, the activated-experts curve (B > N left out) and no sequences', () => {
    const out = cli(['analyse', npy, '--experts', '4', '--batches', '2,3,10', '--json']);
    expect(out.trim().split('\n')).toHaveLength(1);
    const j = JSON.parse(out) as Json;
    expect(j.trace).toEqual({ N: 6, L: 2, K: 2, E: 4, source: npy, format: 'npy' });
    // layer 0: expert 0 in tokens 0, 1, 2, 5; expert 1 in 0, 2, 4; expert 2 in 1, 4; expert 3 in 3, 5 → [4, 3, 2, 2], 11 slots
    // layer 1: expert 0 in 4; 1 in 4, 5; 2 in 0, 1, 2, 5; 3 in 0, 1 → [1, 2, 4, 2], 9 slots
    expect(j.layers.map((l) => [l.layer, l.routed, l.counts])).toEqual([
      [0, 11, [4, 3, 2, 2]],
      [1, 9, [1, 2, 4, 2]],
    ]);
    // layer 0: mean 11/4, max/mean 4/(11/4) = 16/11; layer 1: mean 9/4, max/mean 16/9; hot (> 2·mean) none
    expect(j.layers[0]!.max_over_mean).toBeCloseTo(16 / 11, 12);
    expect(j.layers[1]!.max_over_mean).toBeCloseTo(16 / 9, 12);
    expect(j.layers.map((l) => l.hot)).toEqual([[], []]);
    // B = 2: batches {0,1} {2,3} {4,5}: layer 0 sees {0,1,2} {0,1,3} {0,1,2,3} → (3+3+4)/3; layer 1 {2,3} {2} {0,1,2} → (2+1+3)/3
    // B = 3: batches {0,1,2} {3,4,5}: layer 0 {0,1,2} {0,1,2,3} → 3.5; layer 1 {2,3} {0,1,2} → 2.5
    expect(j.activated.map((a) => a.batch)).toEqual([2, 3]);
    expect(j.activated[0]!.mean_unique[0]).toBeCloseTo(10 / 3, 12);
    expect(j.activated[0]!.mean_unique[1]).toBeCloseTo(2, 12);
    expect(j.activated[1]!.mean_unique).toEqual([3.5, 2.5]);
    expect(j.activated.map((a) => a.theory_uniform)).toEqual([3, 3.5]); // 4·(1 − 0.5²), 4·(1 − 0.5³)
    // routed slots per batch / mean_unique (−1 slots left out): layer 0 (6 + 5)/2, layer 1 (5 + 4)/2
    expect(j.activated[1]!.tokens_per_expert[0]).toBeCloseTo(5.5 / 3.5, 12);
    expect(j.activated[1]!.tokens_per_expert[1]).toBeCloseTo(4.5 / 2.5, 12);
    expect((j as unknown as { gemm_ridge_rows: number }).gemm_ridge_rows).toBe(64); // the default --ridge
    expect(j.sequences).toBeNull();
    // and the whole object is the library's report
    expect(j).toEqual({ ...JSON.parse(JSON.stringify(reportJson(analyse({ ...trace, metadata: { source: npy, format: 'npy' } }, { batches: [2, 3, 10] })))), gemm_ridge_rows: 64 });
  });

  it('the same trace as Megatron-LM JSONL and as a moekit trace (model layer indices, sequences) gives the same loads', () => {
    const jsonl = path.join(dir, 'router_trace_rank0.jsonl');
    writeMegatronJsonl(jsonl, { ...trace, layers: [4, 9] }, { tokensPerStep: 4 });
    const st = path.join(dir, 'trace.safetensors');
    const w = new TraceWriter(st, { E: 4, K: 2, layers: [4, 9] });
    w.append({ experts: ids, scores: new Float32Array(24).fill(0.5), tokens: new Int32Array(6), seq: Int32Array.from([0, 0, 0, 1, 1, 1]) });
    w.finish();
    const a = JSON.parse(cli(['analyse', jsonl, '--experts', '4', '--json'])) as Json;
    const b = JSON.parse(cli(['analyse', st, '--json'])) as Json;
    for (const j of [a, b]) {
      expect(j.layers.map((l) => [l.layer, l.counts])).toEqual([
        [4, [4, 3, 2, 2]],
        [9, [1, 2, 4, 2]],
      ]);
      expect(j.activated.map((x) => x.batch)).toEqual([1]); // 8, 32 and 128 exceed N = 6
    }
    expect(a.trace.format).toBe('megatron-jsonl');
    expect(a.sequences).toBeNull();
    // sequence 0 = tokens 0..2, layer 0: [3, 2, 1, 0] → mean 1.5, max/mean 2; sequence 1 = tokens 3..5, layer 0: [1, 1, 1, 2] → mean 1.25, max/mean 1.6
    expect(b.sequences!.count).toBe(2);
    expect(b.sequences!.max_over_mean[0]).toBeCloseTo((2 + 1.6) / 2, 12);
  });

  it('the table names each layer and the activated-experts curve', () => {
    const out = cli(['analyse', npy, '--experts', '4', '--hot', '1.4']);
    expect(out).toContain('N = 6 tokens, L = 2 layers, top-2 of E = 4 experts');
    expect(out).toMatch(/load per layer \(hot: count > 1\.4 x mean/);
    // layer 1: 4 > 1.4·2.25 = 3.15 → expert 2 is hot
    expect(out).toMatch(/\n\s+1\s+9\s+1\.78\s+.*\s2\n/);
    expect(out).toContain('activated experts per batch');
    // layer 0 pairs: (0,1) tokens 0 and 2, (0,2) token 1, (1,2) token 4, (0,3) token 5 → 0 + 1 (2);
    // 0 -> 2 into layer 1 for tokens 0, 1, 2 and 5 → 4 slot pairs, more than any other
    expect(out).toMatch(/\n\s+0 0 \+ 1 \(2\)\s+0 -> 2 \(4\) into layer 1\n/);
    expect(out).toContain('the trace has no sequence ids');
    expect(out).toContain('grouped GEMM compute-bound from 64 rows per expert (--ridge): no batch size here reaches it at every layer');
    // B = 2: slots per activated expert 11/3 / (10/3) = 1.1 (layer 0) and 9/3 / 2 = 1.5 (layer 1), both ≥ 1.05
    const ridge = cli(['analyse', npy, '--experts', '4', '--batches', '1,2,3', '--ridge', '1.05']);
    expect(ridge).toContain('grouped GEMM compute-bound from 1.05 rows per expert (--ridge): reached at every layer from B = 2');
  });

  it('refuses a missing --experts, bad flags and unknown files, naming the value', () => {
    expect(cliError(['analyse', npy])).toContain(`analyse: ${npy} does not say how many experts each layer has; pass --experts E`);
    expect(cliError(['analyse', npy, '--experts', '3'])).toContain(`npy: ${npy}: expert id 3 at [0, 1, 1] (token, layer, slot) is outside [-1, 3)`);
    expect(cliError(['analyse', npy, '--experts', 'four'])).toContain('--experts must be an integer from 1 to 32768, got "four"');
    expect(cliError(['analyse', npy, '--experts', '4', '--batches', '1,x,8'])).toContain('--batches must be comma-separated positive integers such as 1,8,32,128, got "1,x,8"');
    expect(cliError(['analyse', npy, '--experts', '4', '--batches', '0'])).toContain('got "0"');
    expect(cliError(['analyse', npy, '--experts', '4', '--hot', '-1'])).toContain('--hot must be a positive number, got "-1"');
    expect(cliError(['analyse', npy, '--experts', '4', '--ridge', '0'])).toContain('--ridge must be a positive number of rows per expert, got "0"');
    expect(cliError(['analyse', path.join(dir, 'trace.csv'), '--experts', '4'])).toContain('unknown trace format ".csv"');
  });
});
