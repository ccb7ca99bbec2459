// The planning study of docs/PLANNING.md: on routing traces, balancedness (vLLM's Σ mean / Σ max) of no replication,
// EPLB without and with redundant experts, CRAFT budgets and Libra-style dynamic replication at several EP sizes.
// Plans are made on one trace (--plan-on) and scored on another (--score-on), as a deployment would.
// Usage: npx tsx bench/planning-study.ts --plan-on TRAIN --score-on VALID [--gpus 8,16,32] [--json]
import { Command } from 'commander';
import { loadTrace } from '../src/cli/analyse.js';
import { traceLoads } from '../src/cli/plan-input.js';
import { craft, layerOptions } from '../src/plan/craft.js';
import { dynamicReplication } from '../src/plan/dynamic.js';
import { eplb } from '../src/plan/eplb.js';
import { balance, gpuLoads } from '../src/plan/metrics.js';

const o = new Command()
  .requiredOption('--plan-on <trace>', 'trace the plans are made from')
  .requiredOption('--score-on <trace>', 'held-out trace they are scored on')
  .option('--gpus <list>', 'EP sizes', '8,16,32')
  .option('--budgets <list>', 'CRAFT budgets: extra slots per GPU over all layers', '1,2,4,8')
  .option('--window <n>', 'dynamic replication window (tokens)', '2048')
  .option('--json', 'one JSON object per line')
  .parse()
  .opts<{ planOn: string; scoreOn: string; gpus: string; budgets: string; window: string; json?: boolean }>();

const train = loadTrace(o.planOn, undefined);
const valid = loadTrace(o.scoreOn, undefined);
const planLoads = traceLoads(train);
const scoreLoads = traceLoads(valid);
const E = scoreLoads[0]!.length, L = scoreLoads.length;
const score = (phy: number[][], M: number): number => balance(gpuLoads(phy, scoreLoads, M)).total_balancedness;
const rows: Record<string, unknown>[] = [];
for (const M of o.gpus.split(',').map(Number)) {
  const row: Record<string, unknown> = { trace: o.scoreOn, E, L, gpus: M };
  row.none = score(scoreLoads.map(() => Array.from({ length: E }, (_, e) => e)), M);
  row.eplb_R_E = score(eplb(planLoads, { replicas: E, groups: 1, nodes: 1, gpus: M }).phy2log, M);
  row.eplb_R_E_plus_M = score(eplb(planLoads, { replicas: E + M, groups: 1, nodes: 1, gpus: M }).phy2log, M);
  row.eplb_in_sample = score(eplb(scoreLoads, { replicas: E + M, groups: 1, nodes: 1, gpus: M }).phy2log, M);
  const co = { gpus: M, maxExtra: 4 };
  const options = layerOptions(planLoads, co);
  row.craft = Object.fromEntries(o.budgets.split(',').map(Number).map((b) => {
    const c = craft(planLoads, b, co, options);
    return [b, { extra: c.extra, balancedness: score(c.phy2log, M), in_sample: c.total_balancedness }];
  }));
  const initial = eplb(planLoads, { replicas: E + M, groups: 1, nodes: 1, gpus: M }).phy2log;
  const d = dynamicReplication(valid, E, { replicas: E + M, groups: 1, nodes: 1, gpus: M, window: Number(o.window), copies: 2, history: 4, initial });
  row.dynamic = d;
  rows.push(row);
  if (o.json) console.log(JSON.stringify(row));
  else {
    const f = (x: unknown): string => (x as number).toFixed(3);
    const cr = row.craft as Record<string, { extra: number[]; balancedness: number; in_sample: number }>;
    console.log(`EP ${M}: none ${f(row.none)} | EPLB R=E ${f(row.eplb_R_E)} | EPLB R=E+${M} ${f(row.eplb_R_E_plus_M)} (in-sample ${f(row.eplb_in_sample)}) | CRAFT ${Object.entries(cr).map(([b, c]) => `${b}: ${f(c.balancedness)} (${f(c.in_sample)}) [${c.extra.join(' ')}]`).join(', ')} | static ${f(d.static_balancedness)} dynamic ${f(d.dynamic_balancedness)} per-window ${f(d.oracle_balancedness)} (${d.copies} copies)`);
  }
}
