// Whether a ModelConfig fits a Hugging Face architecture exactly: the features a target layout cannot hold (or always
// has), named, so an export refuses instead of writing a checkpoint that reloads as a different model.
import type { ModelConfig } from '../config.js';
import type { MoELM } from '../moe-lm.js';

/** Features of `cfg` that `arch`'s layout cannot express, one phrase each; empty when the export is faithful. */
export function archMismatches(cfg: ModelConfig, arch: string): string[] {
  const out: string[] = [];
  const all = Array.from({ length: cfg.layers }, (_, l) => l);
  const slidingEverywhere = cfg.slidingWindow === 0 || (cfg.slidingLayers ?? all).length === cfg.layers;
  if (cfg.ffn !== 'moe') out.push(`ffn "${cfg.ffn}" (${arch} has routed experts; materialise clustered experts first)`);
  if (cfg.capacityFactor !== undefined) out.push(`capacityFactor ${cfg.capacityFactor} (${arch} is dropless)`);
  if (cfg.clipQkv !== undefined && arch !== 'olmoe') out.push(`clipQkv ${cfg.clipQkv} (only olmoe clips q/k/v)`);
  if (arch !== 'gpt_oss') {
    // what only gpt_oss's layout holds
    if (cfg.attnSinks) out.push(`attnSinks (${arch} has no attention sinks)`);
    if (cfg.routerBias) out.push(`routerBias (${arch}'s router has no bias)`);
    if (cfg.expertBias) out.push(`expertBias (${arch}'s experts have no biases)`);
    if (cfg.expertAct !== 'swiglu') out.push(`expertAct "${cfg.expertAct}" (${arch}'s experts are plain SwiGLU)`);
  }
  const noSigmoid = (): void => void (cfg.router !== 'softmax-topk' && out.push(`router "${cfg.router}" (${arch} routes by softmax top-k)`));
  const qk = (want: ModelConfig['qkNorm']): void => {
    if (cfg.qkNorm !== want) out.push(want === 'none' ? `qkNorm "${cfg.qkNorm}" (${arch} has no q/k norm)` : `qkNorm "${cfg.qkNorm}" (${arch} always has ${want === 'head' ? 'per-head' : 'full-width'} q/k norms, qkNorm "${want}")`);
  };
  const noShared = (): void => void (cfg.sharedWidth > 0 && out.push(`sharedWidth ${cfg.sharedWidth} (${arch} has no shared expert)`));
  const noDense = (): void => void (cfg.denseLayers.length > 0 && out.push(`denseLayers [${cfg.denseLayers.join(', ')}] (${arch} has experts in every layer)`));
  const tiedBiases = (): void => void (cfg.qkvBias !== cfg.attnOutBias && out.push(`qkvBias ${cfg.qkvBias} with attnOutBias ${cfg.attnOutBias} (${arch}'s attention_bias sets both)`));
  switch (arch) {
    case 'mixtral':
      noSigmoid();
      qk('none');
      noShared();
      noDense();
      if (cfg.qkvBias) out.push('qkvBias (mixtral has no q/k/v biases)');
      if (cfg.attnOutBias) out.push('attnOutBias (mixtral has no output-projection bias)');
      if (!cfg.renormalize) out.push('renormalize false (mixtral always renormalises its top-k weights)');
      if (!slidingEverywhere) out.push(`slidingLayers [${cfg.slidingLayers!.join(', ')}] (mixtral's sliding_window applies to every layer)`);
      break;
    case 'qwen2_moe':
      noSigmoid();
      qk('none');
      if (cfg.attnOutBias) out.push('attnOutBias (qwen2_moe has no output-projection bias)');
      if (cfg.sharedWidth > 0 && !cfg.sharedGate) out.push(`an ungated shared expert (qwen2_moe always gates it: sharedGate true)`);
      break;
    case 'qwen3_moe':
      noSigmoid();
      qk('head');
      noShared();
      tiedBiases();
      break;
    case 'olmoe':
      noSigmoid();
      qk('full');
      noShared();
      noDense();
      tiedBiases();
      if (cfg.slidingWindow > 0) out.push(`slidingWindow ${cfg.slidingWindow} (olmoe attends to the full context)`);
      break;
    default:
      break; // the architecture's own toHfConfig checks what it holds
  }
  return out;
}

/** Architectures whose routers keep a selection bias (e_score_correction_bias) in the checkpoint. */
export const archHoldsSelectionBias = (arch: string): boolean => arch === 'deepseek_v3' || arch === 'kimi_k2' || arch === 'glm4_moe';

/** The selection-bias buffers (aux-loss-free balancing) of a model, by name, and the largest |bias| among them. */
export function selectionBiases(model: MoELM): { biases: [string, Float32Array][]; maxAbs: number } {
  const biases = model.selectionBiasBuffers().map(([n, t]): [string, Float32Array] => [n, Float32Array.from(t.dataSync())]);
  let maxAbs = 0;
  for (const [, b] of biases) for (const x of b) maxAbs = Math.max(maxAbs, Math.abs(x));
  return { biases, maxAbs };
}
