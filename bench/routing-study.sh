#!/usr/bin/env bash
# The routing study of docs/ROUTING.md: the `small` and `fine` presets, each trained on Brown under three balancing
# regimes, traced on Brown, analysed, and scored with the lookahead predictors. Usage: bench/routing-study.sh OUTDIR
# (after npm run build). Writes OUTDIR/{runs,traces}/ and OUTDIR/<preset>-<regime>.{train,analyse,predict}.json.
set -euo pipefail
out="${1:?usage: bench/routing-study.sh OUTDIR}"
moekit() { node "$(dirname "$0")/../dist/src/cli/main.js" "$@"; }
declare -A REGIMES=(
  [switch]='{"auxLossCoef": 0.01, "biasUpdateRate": 0}'
  [weak]='{"auxLossCoef": 0.0001, "biasUpdateRate": 0}'
  [bias]='{"auxLossCoef": 0.0001, "biasUpdateRate": 0.001}'
)
mkdir -p "$out/runs" "$out/traces"
for preset in small fine; do
  for regime in switch weak bias; do
    name="$preset-$regime"
    echo "== $name: train (${REGIMES[$regime]})" >&2
    moekit train --preset "$preset" --config "${REGIMES[$regime]}" --out "$out/runs/$name" --overwrite --json | tail -1 > "$out/$name.train.json"
    echo "== $name: trace" >&2
    moekit trace "$out/runs/$name" --out "$out/traces/$name-valid.safetensors" --data brown:valid --json > /dev/null
    moekit trace "$out/runs/$name" --out "$out/traces/$name-train-h.safetensors" --data brown:train --max-tokens 50000 --hidden --json > /dev/null
    moekit trace "$out/runs/$name" --out "$out/traces/$name-valid-h.safetensors" --data brown:valid --max-tokens 50000 --hidden --json > /dev/null
    echo "== $name: analyse, predict" >&2
    moekit analyse "$out/traces/$name-valid.safetensors" --json > "$out/$name.analyse.json"
    moekit predict --train "$out/traces/$name-train-h.safetensors" --eval "$out/traces/$name-valid-h.safetensors" --model "$out/runs/$name" --json > "$out/$name.predict.json"
  done
done
