// moekit plan: expert placement and replication plans from expert loads (docs/PLANNING.md): DeepSeek's EPLB, with slot
// preservation and a budgeted rebalance against a current plan; CRAFT's per-layer replica budgets; Libra-style dynamic
// replication scored on a trace.
import type { Command } from 'commander';
import { craft, craftPlan, layerOptions, planFromPhy2log } from '../plan/craft.js';
import { dynamicReplication } from '../plan/dynamic.js';
import { eplb } from '../plan/eplb.js';
import { budgetedRebalance, migrationCost, preserveSlots, type Migration } from '../plan/migrate.js';
import { balance, gpuLoads, type Balance } from '../plan/metrics.js';
import type { Plan } from '../plan/types.js';
import { readPlanFile, writePlanFile, type PlanFormat } from '../plan/plan-file.js';
import { sglangLaunchArgs, type SglangLayout } from '../plan/engines.js';
import { expertsOf } from '../trace/stats.js';
import { checkWritableFile } from '../io/outputs.js';
import { intOption } from './args.js';
import { loadTrace } from './analyse.js';
import { readLoads } from './plan-input.js';

interface Common { loads: string; experts?: string; gpus: string; groups: string; nodes: string; json?: boolean; out?: string; format: string; modelLayers?: string }

const f = (x: number, d = 3): string => x.toFixed(d);

/** The placement a plan starts from when nothing is replicated: expert e in slot e (needs E % gpus == 0). */
function baseline(loads: number[][], gpus: number): Balance | null {
  const E = loads[0]!.length;
  if (E % gpus !== 0) return null;
  return balance(gpuLoads(loads.map(() => Array.from({ length: E }, (_, e) => e)), loads, gpus));
}

function report(name: string, loads: number[][], plan: Plan, before: Balance | null, migration?: Migration): Record<string, unknown> {
  const after = balance(gpuLoads(plan.phy2log, loads, plan.gpus));
  return {
    planner: name, ...plan,
    balance: { before, after },
    replicas_per_layer: plan.phy2log.map((s) => s.length),
    ...(migration ? { migration } : {}),
  };
}

function printReport(r: Record<string, unknown>, what: string): void {
  const beforeIs = (r.before_is as string | undefined) ?? 'no replication';
  const { before, after } = r.balance as { before: Balance | null; after: Balance };
  const reps = r.replicas_per_layer as number[];
  console.log(`${r.planner} plan (${r.policy}) for ${r.gpus} GPUs on ${r.nodes} node(s), from ${what}`);
  console.log(`  ${'layer'.padStart(5)} ${'replicas'.padStart(8)} ${'balancedness before'.padStart(20)} ${'after'.padStart(7)} ${'imbalance after'.padStart(16)}`);
  after.balancedness.forEach((b, l) => {
    console.log(`  ${String(l).padStart(5)} ${String(reps[l]).padStart(8)} ${(before ? f(before.balancedness[l]!) : '—').padStart(20)} ${f(b).padStart(7)} ${f(after.imbalance[l]!).padStart(16)}`);
  });
  console.log(`  over all layers (Σ mean / Σ max): ${before ? `${f(before.total_balancedness)} with ${beforeIs} → ` : ''}${f(after.total_balancedness)}`);
  const m = r.migration as Migration | undefined;
  if (m) console.log(`  migration from --prev: ${m.copies.reduce((a, b) => a + b, 0)} expert copies, ${m.changed_slots.reduce((a, b) => a + b, 0)} slots changed${m.bytes > 0 ? `, ${m.bytes} bytes` : ''}`);
}

/** --format: moekit (default) or sglang. */
function parseFormat(v: string): PlanFormat {
  if (v !== 'moekit' && v !== 'sglang') throw new Error(`--format must be moekit or sglang, got "${v}"`);
  return v;
}

/** Where the plan's layers sit among the model's (for SGLang): the trace's layer ids, or 0..L−1, in --model-layers. */
function layoutOf(o: Common, L: number, traceLayers: number[] | undefined): SglangLayout | undefined {
  if (o.modelLayers === undefined) return undefined;
  return { numLayers: intOption('model-layers', o.modelLayers, 0, 1), layers: traceLayers ?? Array.from({ length: L }, (_, i) => i) };
}

async function emit(r: Record<string, unknown>, plan: Plan, o: Common, what: string, traceLayers?: number[]): Promise<void> {
  const format = parseFormat(o.format);
  if (o.out) await writePlanFile(o.out, plan, format, { sglang: layoutOf(o, plan.phy2log.length, traceLayers) });
  if (o.json) console.log(JSON.stringify(r));
  else {
    printReport(r, what);
    if (o.out) {
      console.log(`plan written to ${o.out} (${format})`);
      if (format === 'sglang') console.log(`  SGLang: python -m sglang.launch_server --model-path MODEL ${sglangLaunchArgs(plan, o.out).join(' ')}`);
    }
  }
}

const common = (c: Command): Command => c
  .requiredOption('--loads <file>', 'expert loads: JSON [layers][experts], an `analyse --json` report, or a trace (.safetensors, .npy, .jsonl)')
  .option('--experts <E>', 'experts per layer (for .npy and .jsonl traces)')
  .requiredOption('--gpus <M>', 'GPUs (expert-parallel ranks)')
  .option('--groups <G>', 'expert groups (EPLB packs whole groups to nodes when groups % nodes == 0)', '1')
  .option('--nodes <N>', 'nodes (GPUs per node = gpus / nodes)', '1')
  .option('--out <file>', 'write the plan as JSON (atomically)')
  .option('--format <f>', 'moekit (the plan; read back by --prev and simulate) or sglang (--init-expert-location JSON)', 'moekit')
  .option('--model-layers <n>', 'sglang: the model\'s decoder layers (num_hidden_layers); plan rows go to the traced layer ids, others get the trivial placement')
  .option('--json', 'print one JSON object: the plan and its balance');

export function registerPlan(program: Command): void {
  const plan = program.command('plan').description('expert placement and replication plans from expert loads (EPLB, CRAFT, dynamic replication)');

  common(plan.command('eplb').description('DeepSeek\'s expert-parallel load balancer: replicate hot experts, pack them to GPUs'))
    .requiredOption('--replicas <R>', 'physical experts per layer (a multiple of --gpus, at least E)')
    .option('--prev <plan>', 'the current plan: keep experts in their slots where they stay on a GPU, and report the migration')
    .option('--max-moves <n>', 'with --prev: rebalance the current plan with at most n expert copies instead of planning afresh')
    .option('--expert-bytes <b>', 'bytes of one expert\'s weights, for the migration in bytes')
    .action(async (o: Common & { replicas: string; prev?: string; maxMoves?: string; expertBytes?: string }) => {
      if (o.out) checkWritableFile(o.out, '--out');
      parseFormat(o.format);
      const experts = o.experts === undefined ? undefined : intOption('experts', o.experts, 0, 1);
      const { loads, what, trace } = readLoads(o.loads, experts);
      const opts = { replicas: intOption('replicas', o.replicas, 0, 1), groups: intOption('groups', o.groups, 1, 1), nodes: intOption('nodes', o.nodes, 1, 1), gpus: intOption('gpus', o.gpus, 0, 1) };
      const expertBytes = intOption('expert-bytes', o.expertBytes, 0, 0);
      if (o.maxMoves !== undefined && !o.prev) throw new Error('--max-moves rebalances a current plan: pass it with --prev PLAN');
      let p = eplb(loads, opts);
      let migration: Migration | undefined;
      let before = baseline(loads, opts.gpus);
      if (o.prev) {
        const prev = readPlanFile(o.prev);
        if (prev.gpus !== opts.gpus) throw new Error(`--prev ${o.prev} is for ${prev.gpus} GPUs, not --gpus ${opts.gpus}`);
        if (prev.phy2log.length !== loads.length) throw new Error(`--prev ${o.prev} has ${prev.phy2log.length} layers; the loads have ${loads.length}`);
        const next = o.maxMoves !== undefined
          ? budgetedRebalance(prev.phy2log, loads, opts.gpus, intOption('max-moves', o.maxMoves, 0, 0)).phy2log
          : preserveSlots(prev.phy2log, p.phy2log, opts.gpus);
        p = planFromPhy2log(next, loads[0]!.length, { policy: o.maxMoves !== undefined ? 'budgeted' : p.policy, gpus: opts.gpus, nodes: opts.nodes, groups: opts.groups });
        migration = migrationCost(prev.phy2log, next, opts.gpus, expertBytes);
        before = balance(gpuLoads(prev.phy2log, loads, opts.gpus)); // the current plan on these loads
      }
      const r = report('eplb', loads, p, before, migration);
      r.before_is = o.prev ? 'the --prev plan' : 'no replication';
      await emit(r, p, o, what, trace?.layers);
    });

  common(plan.command('craft').description('per-layer replica budgets (CRAFT): extra slots per GPU chosen per layer under a memory budget, exactly'))
    .option('--budget <slots>', 'extra expert slots per GPU over all layers')
    .option('--budget-bytes <b>', 'the budget as bytes per GPU (with --expert-bytes)')
    .option('--expert-bytes <b>', 'bytes of one expert\'s weights')
    .option('--max-extra <r>', 'most extra slots per GPU at one layer', '4')
    .action(async (o: Common & { budget?: string; budgetBytes?: string; expertBytes?: string; maxExtra: string }) => {
      if (o.out) checkWritableFile(o.out, '--out');
      parseFormat(o.format);
      const experts = o.experts === undefined ? undefined : intOption('experts', o.experts, 0, 1);
      const { loads, what, trace } = readLoads(o.loads, experts);
      let budget: number;
      if (o.budget !== undefined) budget = intOption('budget', o.budget, 0, 0);
      else if (o.budgetBytes !== undefined && o.expertBytes !== undefined) budget = Math.floor(intOption('budget-bytes', o.budgetBytes, 0, 0) / intOption('expert-bytes', o.expertBytes, 1, 1));
      else throw new Error('plan craft: give --budget SLOTS, or --budget-bytes B with --expert-bytes B');
      const co = { gpus: intOption('gpus', o.gpus, 0, 1), groups: intOption('groups', o.groups, 1, 1), nodes: intOption('nodes', o.nodes, 1, 1), maxExtra: intOption('max-extra', o.maxExtra, 4, 0) };
      const options = layerOptions(loads, co);
      const c = craft(loads, budget, co, options);
      const cp = craftPlan(c, loads[0]!.length, co);
      const r = report('craft', loads, cp, baseline(loads, co.gpus));
      r.craft = { budget, spent: c.cost, extra: c.extra, gain: options.map((opts) => opts.map((x) => x.balancedness - opts[0]!.balancedness)) };
      await emit(r, cp, o, what, trace?.layers);
      if (!o.json) console.log(`  extra slots per GPU by layer: ${c.extra.join(' ')} (${c.cost} of ${budget})`);
    });

  plan.command('dynamic')
    .description('Libra-style dynamic replication on a trace: copy hot experts after every window; scored against static EPLB')
    .argument('<trace>', 'a routing trace (.safetensors, .npy, .jsonl)')
    .option('--experts <E>', 'experts per layer (for .npy and .jsonl traces)')
    .requiredOption('--gpus <M>', 'GPUs')
    .requiredOption('--replicas <R>', 'physical experts per layer (a multiple of --gpus, above E for room to replicate)')
    .option('--groups <G>', 'expert groups', '1')
    .option('--nodes <N>', 'nodes', '1')
    .option('--window <tokens>', 'tokens per window (the first plans the static EPLB)', '4096')
    .option('--copies <n>', 'expert copies per layer after each window', '2')
    .option('--history <n>', 'windows of recent load the copies are decided on', '4')
    .option('--prev <plan>', 'start from this plan (default: EPLB on the first window)')
    .option('--json', 'print one JSON object')
    .action((file: string, o: { experts?: string; gpus: string; replicas: string; groups: string; nodes: string; window: string; copies: string; history: string; prev?: string; json?: boolean }) => {
      const experts = o.experts === undefined ? undefined : intOption('experts', o.experts, 0, 1);
      const t = loadTrace(file, experts);
      const E = expertsOf(t, experts);
      const r = dynamicReplication(t, E, {
        gpus: intOption('gpus', o.gpus, 0, 1), replicas: intOption('replicas', o.replicas, 0, 1), groups: intOption('groups', o.groups, 1, 1),
        nodes: intOption('nodes', o.nodes, 1, 1), window: intOption('window', o.window, 4096, 1), copies: intOption('copies', o.copies, 2, 0), history: intOption('history', o.history, 4, 1),
        ...(o.prev ? { initial: readPlanFile(o.prev).phy2log } : {}),
      });
      if (o.json) console.log(JSON.stringify(r));
      else {
        console.log(`${file}: ${r.windows} windows of ${r.window} tokens, copies decided on the last ${r.history}; balancedness (Σ mean / Σ max) on windows 2..${r.windows}:`);
        console.log(`  static ${o.prev ? `--prev plan` : 'EPLB (planned on window 1)'} ${f(r.static_balancedness)}, dynamic ${f(r.dynamic_balancedness)} (${r.copies} expert copies), per-window EPLB ${f(r.oracle_balancedness)}`);
      }
    });
}
