// Regroup planning: from a fused similarity matrix to a new grouping of E experts into G contiguous groups, as a pure
// plan (which old slot each new slot takes, which groups keep their members). The clustered block applies it.
import type { Rng } from '../tensor/random.js';
import { clusterExperts } from './kmeans.js';

export interface RegroupPlan {
  /** new slot s holds old slot perm[s]; new group g is slots g·M .. (g+1)·M − 1 */
  perm: Int32Array;
  /** old slots of each new group, in slot order */
  groups: number[][];
  /** per new group, the old group its first member came from */
  sourceGroup: number[];
  /** new groups whose members are exactly one old group, in order (their bases and factors move unchanged) */
  kept: Set<number>;
  /** mean similarity of the expert pairs that share a group */
  intraSimilarity: number;
}

/**
 * Groups E experts (slots) into G equal groups by similarity S (E × E, row-major): balanced K-means++ on 1 − S
 * (`clusterExperts`), then the slot permutation that makes each group contiguous.
 */
export function planRegroup(similarity: ArrayLike<number>, E: number, G: number, rng: Rng): RegroupPlan {
  const M = E / G;
  const c = clusterExperts(similarity, E, G, rng);
  const sourceGroup = c.groups.map((members) => Math.floor(members[0]! / M));
  const kept = new Set<number>();
  c.groups.forEach((members, g) => {
    if (members.every((m, j) => m === sourceGroup[g]! * M + j)) kept.add(g);
  });
  return { perm: Int32Array.from(c.groups.flat()), groups: c.groups, sourceGroup, kept, intraSimilarity: c.intraSimilarity };
}
