// moekit predict: lookahead expert predictors fitted on one trace and scored on another (docs/ROUTING.md).
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { setBackend } from '../backend/registry.js';
import { loadModelDir } from '../models/dir.js';
import { SwiGLU } from '../nn/swiglu.js';
import { tensor } from '../tensor/api.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { predictExperts, type LayerRouter, type PredictScore } from '../trace/predict.js';
import type { RoutingTrace } from '../trace/types.js';
import { loadTrace } from './analyse.js';
import { intOption } from './args.js';

interface PredictCliOptions { train: string; eval: string; model?: string; distances: string; experts?: string; backend: string; json?: boolean }

/** Each traced layer's router from the model directory the trace names (or `--model`). */
async function routersOf(dir: string, t: RoutingTrace): Promise<LayerRouter[]> {
  const m = await loadModelDir(dir);
  return t.layers.map((li) => {
    const mlp = m.model.layers[li]?.mlp;
    if (!mlp || mlp instanceof SwiGLU) throw new Error(`predict: layer ${li} of the trace is not an MoE layer of ${dir}`);
    if (t.H !== undefined && t.H !== m.config.hidden) throw new Error(`predict: the trace's hidden width ${t.H} is not the model's ${m.config.hidden}`);
    return (hidden: Float32Array, n: number): Int32Array => noGrad(() => tidy(() => Int32Array.from(mlp.route(tensor(hidden, [n, m.config.hidden])).experts.dataSync())));
  });
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('lookahead expert prediction: fit predictors on one trace, score recall of the next layers\' experts on another')
    .requiredOption('--train <trace>', 'trace to fit the predictors on (moekit .safetensors, .npy or .jsonl)')
    .requiredOption('--eval <trace>', 'held-out trace to score them on')
    .option('--model <dir>', 'model whose routers speculative gating uses (default: the model the trace names; needs traces made with --hidden)')
    .option('--distances <list>', 'layers ahead to predict', '1,2,3')
    .option('--experts <n>', 'experts per layer, for .npy traces')
    .option('--backend <name>', 'js | wasm', 'wasm')
    .option('--json', 'print one JSON object')
    .action(async (o: PredictCliOptions) => {
      const experts = o.experts === undefined ? undefined : intOption('experts', o.experts, 0, 1);
      const distances = o.distances.split(',').map((s) => intOption('distances', s.trim(), 0, 1));
      const train = loadTrace(o.train, experts);
      const ev = loadTrace(o.eval, experts);
      let routers: LayerRouter[] | undefined;
      const modelDir = o.model ?? ev.metadata.model;
      if (train.hidden && ev.hidden) {
        if (!modelDir || !existsSync(modelDir)) throw new Error(`predict: speculative gating needs the model's routers: pass --model (the trace names ${JSON.stringify(modelDir ?? null)})`);
        await setBackend(o.backend);
        routers = await routersOf(modelDir, ev);
      }
      const scores: PredictScore[] = predictExperts(train, ev, { distances, ...(routers ? { routers } : {}) });
      if (o.json) {
        console.log(JSON.stringify({ train: o.train, eval: o.eval, tokens: { train: train.N, eval: ev.N }, K: ev.K, E: ev.E, speculative: routers !== undefined, scores }));
        return;
      }
      console.log(`predicting ${ev.K} of ${ev.E} experts: fitted on ${train.N} tokens (${o.train}), scored on ${ev.N} (${o.eval})${routers ? '' : '; no hidden states in the traces, so no speculative gating'}`);
      for (const d of distances) {
        console.log(`\ndistance ${d}: recall@K / recall@2K / exact set, per predicted layer`);
        const names = [...new Set(scores.map((s) => s.predictor))];
        const targets = [...new Set(scores.filter((s) => s.distance === d).map((s) => s.layer))];
        console.log(['predictor'.padEnd(30), ...targets.map((l) => `layer ${l}`.padEnd(22))].join(''));
        for (const n of names) {
          const row = targets.map((l) => scores.find((s) => s.predictor === n && s.distance === d && s.layer === l)!);
          console.log([n.padEnd(30), ...row.map((s) => `${pct(s.recall)} / ${pct(s.recall2k)} / ${pct(s.exact)}`.padEnd(22))].join(''));
        }
      }
    });
}
