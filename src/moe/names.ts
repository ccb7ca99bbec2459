// Names of MoE tensors that code outside the block looks up by name (checkpoints, model directories).

/**
 * A router's selection-bias buffer (E) (DeepSeek-V3's e_score_correction_bias): saved with the weights; files written
 * before clustered routers had one lack it, and it then stays zeros (no bias).
 */
export const SELECTION_BIAS = 'e_score_correction_bias';
