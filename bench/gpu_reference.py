#!/usr/bin/env python3
"""PyTorch reference for bench/gpu.ts on the same GPU, in the same command: the same shapes, the same JSON lines
(engine "pytorch"). fp32 throughout with TF32 off, so both sides do fp32 arithmetic.

  gemm       n x n x n matmul, TFLOP/s
  moe-block  transformers' Qwen3MoeSparseMoeBlock at H=2048, I=768, E=128, K=8, forward under no_grad, us per call
  train      a Qwen2-MoE causal LM with moekit's `base` preset dimensions, AdamW steps, tokens/s

usage: python3 bench/gpu_reference.py [--gemm 1024,4096,8192] [--moe-tokens 1,32,512,4096] [--train-steps 10]
"""
import argparse
import json
import statistics
import time

import torch


def timed(f, reps):
    """Median seconds of reps calls, each synchronised."""
    f()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def emit(what, size, value, unit):
    print(json.dumps({'bench': 'gpu', 'engine': 'pytorch', 'what': what, 'size': size, 'value': value, 'unit': unit,
                      'adapter': torch.cuda.get_device_name(0)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--gemm', default='1024,4096,8192')
    ap.add_argument('--moe-tokens', default='1,32,512,4096')
    ap.add_argument('--train-steps', type=int, default=10)
    ap.add_argument('--reps', type=int, default=10)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = 'cuda'
    torch.manual_seed(1)

    for n in [int(x) for x in a.gemm.split(',') if x]:
        x = torch.randn(n, n, device=dev)
        y = torch.randn(n, n, device=dev)
        s = timed(lambda: x @ y, a.reps)
        emit('gemm', n, 2 * n ** 3 / s / 1e12, 'TFLOP/s')

    import transformers
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock
    cfg = transformers.Qwen3MoeConfig(hidden_size=2048, moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8,
                                      norm_topk_prob=True)
    block = Qwen3MoeSparseMoeBlock(cfg).to(dev).float().eval()
    for T in [int(x) for x in a.moe_tokens.split(',') if x]:
        h = torch.randn(1, T, 2048, device=dev)
        with torch.no_grad():
            s = timed(lambda: block(h), a.reps)
        emit('moe-block', T, s * 1e6, 'µs')

    if a.train_steps > 0:
        # moekit's `base` preset: vocab 8192, hidden 512, 8 layers, 8 heads / 4 KV heads, 16 experts of 256, top-2,
        # a shared expert of 256, renormalised top-k weights
        cfg = transformers.Qwen2MoeConfig(vocab_size=8192, hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
                                          num_key_value_heads=4, max_position_embeddings=512, intermediate_size=1024,
                                          moe_intermediate_size=256, shared_expert_intermediate_size=256, num_experts=16,
                                          num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[],
                                          tie_word_embeddings=True, router_aux_loss_coef=0.01, output_router_logits=True)
        model = transformers.AutoModelForCausalLM.from_config(cfg).to(dev).float().train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
        batch, seq = 8, 512
        ids = torch.randint(0, 8192, (batch, seq), device=dev)
        rates = []
        for step in range(a.train_steps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if step >= 2:
                rates.append(batch * seq / (time.perf_counter() - t0))
        emit('train', batch * seq, statistics.median(rates), 'tok/s')


if __name__ == '__main__':
    main()
