// Writes a synthetic routing trace as a NumPy .npy int16 [N, L, K]: each token picks K distinct experts of E uniformly
// at random at every layer (fixed seed). The input of `moekit analyse`'s speed figures in docs/ROUTING.md.
import { Command } from 'commander';
import { writeNpy } from '../src/trace/npy.js';
import { Rng } from './engines/types.js';

const opts = new Command()
  .name('synthetic-trace')
  .description('uniform random routing trace as .npy int16 [N, L, K]')
  .argument('<out>', 'output .npy file')
  .option('--tokens <n>', 'N', Number, 1_000_000)
  .option('--layers <n>', 'L', Number, 48)
  .option('--top-k <n>', 'K', Number, 8)
  .option('--experts <n>', 'E', Number, 128)
  .option('--seed <n>', 'seed', Number, 1)
  .parse();
const o = opts.opts<{ tokens: number; layers: number; topK: number; experts: number; seed: number }>();
const [out] = opts.args as [string];
const { tokens: N, layers: L, topK: K, experts: E } = o;
for (const [k, v] of Object.entries({ tokens: N, layers: L, 'top-k': K, experts: E })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k}: ${v} is not a positive integer`);
}
if (K > E || E > 32767) throw new Error(`--top-k ${K} / --experts ${E}: want K ≤ E ≤ 32767`);
const ids = new Int16Array(N * L * K);
const rng = new Rng(o.seed);
const taken = new Uint8Array(E);
for (let r = 0; r < N * L; r++) {
  for (let k = 0; k < K; k++) {
    let e = rng.int(E);
    while (taken[e]) e = rng.int(E);
    taken[e] = 1;
    ids[r * K + k] = e;
  }
  for (let k = 0; k < K; k++) taken[ids[r * K + k]!] = 0;
}
writeNpy(out, ids, [N, L, K], '<i2');
console.log(`${out}: ${N} tokens × ${L} layers × top-${K}, E = ${E}`);
