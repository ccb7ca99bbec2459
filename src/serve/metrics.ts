// What the server measures, as Prometheus metrics: requests, tokens, queue depth, TTFT/TPOT histograms, and from the
// routing observer, per layer, tokens per expert and the experts each step activates (decode, prefill, mixed steps).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RoutingEvent, RoutingObserver } from '../moe/pipeline.js';
import type { StepInfo } from './engine.js';

export class ServerMetrics implements RoutingObserver {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'moekit_requests_total', help: 'requests answered, by endpoint and HTTP status', labelNames: ['endpoint', 'status'], registers: [this.registry] });
  readonly promptTokens = new Counter({ name: 'moekit_prompt_tokens_total', help: 'prompt tokens processed', registers: [this.registry] });
  readonly generatedTokens = new Counter({ name: 'moekit_generation_tokens_total', help: 'tokens generated', registers: [this.registry] });
  readonly queue = new Gauge({ name: 'moekit_queue_depth', help: 'requests waiting for a slot', registers: [this.registry] });
  readonly running = new Gauge({ name: 'moekit_running_sequences', help: 'sequences in the batch', registers: [this.registry] });
  readonly ttft = new Histogram({ name: 'moekit_time_to_first_token_seconds', help: 'time to first token', buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  readonly tpot = new Histogram({ name: 'moekit_time_per_output_token_seconds', help: 'time per output token after the first', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [this.registry] });
  readonly steps = new Counter({ name: 'moekit_steps_total', help: 'batched forward steps, by kind (decode, prefill, mixed)', labelNames: ['kind'], registers: [this.registry] });
  readonly expertTokens = new Counter({ name: 'moekit_expert_tokens_total', help: 'tokens routed to each expert, per MoE layer', labelNames: ['layer', 'expert'], registers: [this.registry] });
  readonly activated = new Histogram({ name: 'moekit_activated_experts', help: 'distinct experts a step activates at a layer, by step kind', labelNames: ['layer', 'kind'], buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [this.registry] });
  /** called after each step with the distinct experts of each MoE layer in it (benchmarks) */
  onStepExperts?: (s: StepInfo, distinct: number[]) => void;
  /** this step's distinct experts per layer, until the step's kind is known */
  #pending: { layer: number; distinct: number }[] = [];

  /** Routing of one MoE layer in one step (read synchronously: CPU backends). */
  observe(e: RoutingEvent): void {
    if (!e.experts.backend.readSync) return; // GPU backends: routing is not read back per step
    const ids = e.experts.dataSync();
    const seen = new Set<number>();
    const counts = new Map<number, number>();
    for (const id of ids) {
      if (id < 0) continue;
      seen.add(id);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const [expert, n] of counts) this.expertTokens.inc({ layer: String(e.layer), expert: String(expert) }, n);
    this.#pending.push({ layer: e.layer, distinct: seen.size });
  }

  /** After each engine step: the step's kind labels the activated-expert counts observed during it. */
  step(s: StepInfo): void {
    this.steps.inc({ kind: s.kind });
    for (const p of this.#pending) this.activated.observe({ layer: String(p.layer), kind: s.kind }, p.distinct);
    this.onStepExperts?.(s, this.#pending.map((p) => p.distinct));
    this.#pending = [];
    this.running.set(s.running);
    this.queue.set(s.waiting);
  }
}
