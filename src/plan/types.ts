// An expert placement plan: which logical expert each physical slot holds, per MoE layer, and the hardware it is for.

export interface Plan {
  /** how it was made: 'hierarchical' | 'global' (EPLB), or another planner's name */
  policy: string;
  /** GPUs (expert-parallel ranks); slots [g·R/gpus, (g+1)·R/gpus) are GPU g's */
  gpus: number;
  /** nodes; GPUs [n·gpus/nodes, (n+1)·gpus/nodes) are node n's */
  nodes: number;
  /** expert groups the plan was made with */
  groups: number;
  /** physical experts (slots) per layer */
  replicas: number;
  /** [L][R] the logical expert each slot holds */
  phy2log: number[][];
  /** [L][E][maxcount] each expert's slots, −1 padded; maxcount = the largest logcnt over all layers */
  log2phy: number[][][];
  /** [L][E] replicas of each expert */
  logcnt: number[][];
}
