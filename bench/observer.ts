// Decode speed of a preset model with the routing observer off, a no-op observer and a RoutingRecorder, timed in
// alternation in one process; with --compare DIR, also the same model built by another checkout of moekit (its
// src/node.ts loaded next to this one), to compare two versions of the engine on the same machine and run.
import { Command } from 'commander';
import path from 'node:path';
import * as mk from '../src/node.js';
import { machineHeader, median, progress, renderTable } from './common.js';

interface Opts { preset: string; ffn: string; prompt: number; tokens: number; rounds: number; threads: number; compare?: string; json?: boolean }

type Engine = typeof mk;
interface Variant { name: string; run: () => { tokS: number; ids: number[] } }

/** One generation from `engine`'s model: decode tokens per second and the ids. */
function variant(name: string, engine: Engine, model: mk.MoELM, prompt: number[], tokens: number, observer?: () => mk.RoutingObserver): Variant {
  return {
    name,
    run: () => {
      const r = engine.generate(model, prompt, { maxNewTokens: tokens, greedy: true, ...(observer ? { observer: observer() } : {}) });
      return { tokS: ((r.ids.length - prompt.length - 1) * 1000) / r.decodeMs, ids: r.ids };
    },
  };
}

async function build(engine: Engine, o: Opts): Promise<mk.MoELM> {
  await engine.setBackend(await engine.WasmBackend.create({ threads: o.threads }));
  const preset = engine.PRESETS[o.preset as mk.PresetName];
  return new engine.MoELM({ ...preset, ffn: o.ffn as 'moe' | 'clustered', ...(o.ffn === 'clustered' ? { clusterGroups: 2, clusterRank: 4 } : {}) });
}

async function main(): Promise<void> {
  const o = new Command()
    .name('bench:observer')
    .description('decode tokens/s with the routing observer off and on (and of another checkout, --compare)')
    .option('--preset <name>', 'model preset', 'small')
    .option('--ffn <kind>', 'moe | clustered', 'moe')
    .option('--prompt <n>', 'prompt tokens', Number, 16)
    .option('--tokens <n>', 'tokens generated per call', Number, 64)
    .option('--rounds <n>', 'calls per variant, interleaved', Number, 15)
    .option('--threads <n>', 'wasm threads', Number, 2)
    .option('--compare <dir>', 'another moekit checkout to time next to this one (observer off)')
    .option('--json', 'print one JSON object instead of a table')
    .parse()
    .opts<Opts>();
  if (!(o.preset in mk.PRESETS)) throw new Error(`--preset must be one of ${Object.keys(mk.PRESETS).join(', ')}, got "${o.preset}"`);
  if (o.ffn !== 'moe' && o.ffn !== 'clustered') throw new Error(`--ffn must be moe or clustered, got "${o.ffn}"`);
  for (const [k, v] of [['--prompt', o.prompt], ['--tokens', o.tokens], ['--rounds', o.rounds], ['--threads', o.threads]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  }
  const model = await build(mk, o);
  const prompt = Array.from({ length: o.prompt }, (_, i) => (i * 7919) % model.cfg.vocabSize);
  const variants: Variant[] = [
    variant('observer off', mk, model, prompt, o.tokens),
    variant('no-op observer', mk, model, prompt, o.tokens, () => ({ observe: () => {} })),
    variant('RoutingRecorder', mk, model, prompt, o.tokens, () => new mk.RoutingRecorder()),
  ];
  if (o.compare) {
    const other = (await import(path.resolve(o.compare, 'src/node.ts'))) as Engine;
    const otherModel = await build(other, o);
    // each engine has its own current backend: switch before every call
    const wrap = (engine: Engine, be: mk.Backend, v: Variant): Variant => ({ name: v.name, run: () => { engine.useBackend(be); return v.run(); } });
    const mine = mk.getBackend();
    const theirs = other.getBackend();
    variants.forEach((v, i) => (variants[i] = wrap(mk, mine, v)));
    variants.push(wrap(other, theirs, variant(`${o.compare}: observer off`, other, otherModel, prompt, o.tokens)));
  }
  const samples = variants.map(() => [] as number[]);
  const ids = variants.map(() => [] as number[]);
  for (const v of variants) v.run(); // warm-up
  for (let r = 0; r < o.rounds; r++) {
    if (!o.json) progress(`round ${r + 1}/${o.rounds}`);
    variants.forEach((v, i) => {
      const got = v.run();
      samples[i]!.push(got.tokS);
      ids[i] = got.ids;
    });
  }
  const same = ids.every((x) => x.join() === ids[0]!.join());
  const base = median(samples[0]!);
  const rows = variants.map((v, i) => ({ variant: v.name, decodeTokS: +median(samples[i]!).toFixed(1), vsOff: +(median(samples[i]!) / base).toFixed(3), min: +Math.min(...samples[i]!).toFixed(1), max: +Math.max(...samples[i]!).toFixed(1) }));
  if (o.json) {
    console.log(JSON.stringify({ bench: 'observer', preset: o.preset, ffn: o.ffn, prompt: o.prompt, tokens: o.tokens, rounds: o.rounds, threads: o.threads, sameIds: same, rows }));
    return;
  }
  console.log([`decode tokens/s, ${o.preset} preset (${o.ffn}), ${o.prompt}-token prompt, ${o.tokens} greedy tokens per call, ${o.rounds} calls per variant interleaved; median (min–max)`, ...machineHeader()].join('\n'));
  console.log(renderTable(['variant', 'decode tok/s', 'vs off', 'min', 'max'], rows.map((r) => [r.variant, String(r.decodeTokS), r.vsOff.toFixed(3), String(r.min), String(r.max)])));
  console.log(same ? 'every variant generated the same ids' : 'the variants generated different ids');
  process.exit(0);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
