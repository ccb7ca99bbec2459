// A routing trace in memory: which experts each token chose at each MoE layer, whatever file it came from (moekit's
// safetensors trace, a NumPy .npy array as vLLM returns it, Megatron-style JSONL).

export interface RoutingTrace {
  /** tokens */
  N: number;
  /** MoE layers traced */
  L: number;
  /** experts chosen per token and layer (slots; −1 marks an empty slot) */
  K: number;
  /** experts per layer; null when the source does not say (a .npy array without --experts) */
  E: number | null;
  /** (N·L·K) row-major [token][layer][slot]: expert ids, −1 = no expert */
  experts: Int16Array;
  /** the model's layer index of each of the L traced layers (0..L−1 where the source does not say) */
  layers: number[];
  /** (N·L·K) gate weights of the chosen experts, when the source has them */
  scores?: Float32Array;
  /** (N) token ids, when known */
  tokens?: Int32Array;
  /** (N) sequence id of each token, when known */
  seq?: Int32Array;
  /** width of `hidden` */
  H?: number;
  /** (N·L·H) the hidden state entering each traced layer, when recorded (`moekit trace --hidden`) */
  hidden?: Float32Array;
  /** free-form facts about the trace: model, corpus, dtype, source file */
  metadata: Record<string, string>;
}
