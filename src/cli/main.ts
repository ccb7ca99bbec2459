#!/usr/bin/env node
// The moekit command line: parses commands with commander and dispatches to their modules.
import { Command } from 'commander';
import { selfcheck } from './selfcheck.js';
import { registerTrain } from './train.js';
import { registerTokenizer } from './tokenizer.js';
import { registerInfo } from './info.js';
import { registerCompare } from './compare.js';
import { registerEval } from './eval.js';
import { registerBench } from './bench.js';
import { registerRun } from './run.js';
import { registerCheckpoint } from './checkpoint.js';
import { registerExport } from './export.js';
import { registerTrace } from './trace.js';
import { registerAnalyse } from './analyse.js';
import { registerPredict } from './predict.js';
import { registerPlan } from './plan.js';
import { registerSimulate } from './simulate.js';
import { registerServe } from './serve.js';

const program = new Command();
program.name('moekit').description('Mixture-of-Experts engine for TypeScript: train, compress, analyse and run MoE models').version('0.1.0');

program
  .command('selfcheck')
  .description('check the backends on this machine: hot ops on wasm against the js reference, and GEMM GFLOP/s')
  .option('--json', 'print one JSON object')
  .option('--seconds <s>', 'time per GEMM measurement', '0.5')
  .action(async (opts: { json?: boolean; seconds: string }) => {
    const seconds = Number(opts.seconds);
    if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`--seconds must be a positive number, got "${opts.seconds}"`);
    const r = await selfcheck({ seconds });
    if (opts.json) {
      console.log(JSON.stringify(r));
    } else {
      console.log(`moekit selfcheck on ${r.machine.cpu} (${r.machine.cores} cores), Node ${r.machine.node}`);
      console.log(`wasm backend: ${r.wasm.threads} threads (${r.wasm.pool} pool; MOEKIT_THREADS, MOEKIT_POOL), ${r.wasm.relaxedSimd ? 'relaxed SIMD (FMA)' : 'SIMD128'}\n`);
      console.log('op (wasm vs js reference)        max relative diff');
      for (const o of r.ops) console.log(`  ${o.op.padEnd(30)} ${o.maxRelDiff.toExponential(2).padStart(9)}  ${o.ok ? 'ok' : 'FAIL'}`);
      console.log('\nGEMM 512x512x1024 (M x K x N)     GFLOP/s');
      for (const g of r.gemm) console.log(`  ${`${g.engine}, ${g.threads} thread${g.threads > 1 ? 's' : ''}`.padEnd(30)} ${g.gflops.toFixed(1).padStart(9)}`);
      console.log('\nPeers (tfjs-wasm, jax-js, onnxruntime) measured in the same run: npm run bench:gemm');
    }
    if (r.ops.some((o) => !o.ok)) process.exitCode = 1;
  });

registerTrain(program);
registerTokenizer(program);
registerInfo(program);
registerCompare(program);
registerEval(program);
registerBench(program);
registerRun(program);
registerCheckpoint(program);
registerExport(program);
registerTrace(program);
registerAnalyse(program);
registerPredict(program);
registerPlan(program);
registerSimulate(program);
registerServe(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`moekit: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
