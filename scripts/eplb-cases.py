#!/usr/bin/env python3
"""Runs DeepSeek's EPLB reference (deepseek-ai/EPLB eplb.py, path given) on seeded random loads of several shapes and
prints the cases as JSON in the form of ../shared/fixtures/eplb/cases.json (test/fixtures/eplb-extra.json holds the
output). Needs PyTorch; only used to regenerate that fixture.

Usage: python3 scripts/eplb-cases.py PATH/TO/eplb.py > test/fixtures/eplb-extra.json
"""
import importlib.util
import json
import random
import sys

import torch

spec = importlib.util.spec_from_file_location("eplb", sys.argv[1])
eplb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(eplb)

# (layers, experts, replicas, groups, nodes, gpus)
SHAPES = [
    (2, 32, 40, 8, 2, 8),
    (3, 64, 80, 8, 4, 16),
    (2, 20, 24, 5, 2, 4),     # groups % nodes != 0: global policy
    (2, 128, 160, 16, 4, 32),
    (4, 6, 8, 3, 1, 2),
    (2, 64, 64, 1, 1, 8),     # no redundant experts
    (3, 60, 96, 7, 2, 8),     # global, groups do not divide experts
    (1, 256, 288, 8, 4, 32),
]

rng = random.Random(11)
cases = []
for i, (L, E, R, G, N, M) in enumerate(SHAPES):
    loads = [[round(rng.lognormvariate(7, 1.2), 3) for _ in range(E)] for _ in range(L)]
    phy2log, log2phy, logcnt = eplb.rebalance_experts(torch.tensor(loads), R, G, N, M)
    cases.append({
        "name": f"extra{i}", "loads": loads, "replicas": R, "groups": G, "nodes": N, "gpus": M,
        "policy": "hierarchical" if G % N == 0 else "global",
        "phy2log": phy2log.tolist(), "log2phy": log2phy.tolist(), "logcnt": logcnt.tolist(),
    })
print(json.dumps({"source": f"deepseek-ai/EPLB eplb.py @ d52c72d, torch {torch.__version__}", "seed": 11, "cases": cases}))
