// How balanced a placement is: per-GPU loads of a plan under given expert loads (an expert's load split evenly over its
// replicas, as EPLB assumes), balancedness = mean GPU load / max GPU load (vLLM) and imbalance = max / mean (Libra),
// per layer and over all layers as vLLM sums them (Σ_l mean_l / Σ_l max_l).

/** [L][gpus] load of each GPU: the sum over its slots of the slot's expert load / that expert's replica count. */
export function gpuLoads(phy2log: number[][], loads: number[][], gpus: number): number[][] {
  if (phy2log.length !== loads.length) throw new Error(`plan has ${phy2log.length} layers but the loads have ${loads.length}`);
  return phy2log.map((slots, l) => {
    const R = slots.length;
    if (R % gpus !== 0) throw new Error(`layer ${l}: ${R} slots do not divide over ${gpus} GPUs`);
    const E = loads[l]!.length;
    const cnt = new Array<number>(E).fill(0);
    for (const e of slots) {
      if (!(e >= 0 && e < E)) throw new Error(`layer ${l}: slot holds expert ${e}, outside [0, ${E})`);
      cnt[e]!++;
    }
    const per = R / gpus;
    const out = new Array<number>(gpus).fill(0);
    slots.forEach((e, s) => { out[Math.floor(s / per)]! += loads[l]![e]! / cnt[e]!; });
    loads[l]!.forEach((v, e) => {
      if (cnt[e] === 0 && v > 0) throw new Error(`layer ${l}: expert ${e} has load ${v} but no slot`);
    });
    return out;
  });
}

export interface Balance {
  /** per layer: mean GPU load / max GPU load (1 = perfect; 0 when idle) */
  balancedness: number[];
  /** per layer: max / mean (Libra's imbalance; 1 = perfect) */
  imbalance: number[];
  /** over all layers as vLLM logs it: Σ mean / Σ max */
  total_balancedness: number;
  /** Σ max / Σ mean */
  total_imbalance: number;
}

/** Balance of [L][gpus] GPU loads. */
export function balance(perGpu: number[][]): Balance {
  let sMean = 0, sMax = 0;
  const b: number[] = [], im: number[] = [];
  for (const row of perGpu) {
    const mean = row.reduce((a, x) => a + x, 0) / row.length;
    const max = Math.max(...row);
    sMean += mean;
    sMax += max;
    b.push(max > 0 ? mean / max : 0);
    im.push(mean > 0 ? max / mean : 0);
  }
  return { balancedness: b, imbalance: im, total_balancedness: sMax > 0 ? sMean / sMax : 0, total_imbalance: sMean > 0 ? sMax / sMean : 0 };
}

/** The placement without replication: E / gpus consecutive experts per GPU (expert e in slot e). */
export function identityPlacement(L: number, E: number, gpus: number): number[][] {
  if (E % gpus !== 0) throw new Error(`${E} experts do not divide over ${gpus} GPUs without replication`);
  return Array.from({ length: L }, () => Array.from({ length: E }, (_, e) => e));
}
