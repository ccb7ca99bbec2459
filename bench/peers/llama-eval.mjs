// Runs a GGUF file in llama.cpp (node-llama-cpp, CPU prebuilt) on token ids: the greedy continuation and the
// next-token probabilities after the prompt, as one JSON line. Usage: node bench/peers/llama-eval.mjs FILE.gguf IDS N
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';

const [file, idsArg, nArg] = process.argv.slice(2);
if (!file || !idsArg) {
  console.error('usage: node bench/peers/llama-eval.mjs FILE.gguf ID,ID,... [NEW_TOKENS]');
  process.exit(2);
}
const ids = idsArg.split(',').map(Number);
const n = Number(nArg ?? 8);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: process.env.LLAMA_LOG === "1" ? LlamaLogLevel.debug : LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: file });
// an F32 KV cache (llama.cpp keeps F16 by default), so an F32 model is compared in F32 throughout
const ctx = await model.createContext({ contextSize: Math.max(64, ids.length + n + 8), threads: 2, batchSize: ids.length + n, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", flashAttention: false });
// the next-token distribution after the prompt: temperature 1 and no truncation, so these are softmax(logits)
let probs = [];
{
  const seq = ctx.getSequence();
  for await (const out of seq.evaluateWithMetadata(ids, { probabilities: true }, { temperature: 1, topK: 0, topP: 1, minP: 0 })) {
    probs = [...out.probabilities.entries()];
    break;
  }
  seq.dispose();
}
const greedy = [];
{
  const seq = ctx.getSequence();
  for await (const t of seq.evaluate(ids, { temperature: 0 })) {
    greedy.push(t);
    if (greedy.length >= n) break;
  }
  seq.dispose();
}
console.log(JSON.stringify({ greedy, probs, vocab: model.tokens.length }));
await llama.dispose();
