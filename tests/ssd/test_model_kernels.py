"""Our models with the Triton kernels give the torch path's logits: prefill, decode and verify steps, and
speculation branches that read a shared prefix in place equal branches that own a full copy of it.

Runs in a child process with TRITON_INTERPRET=1 (Triton's CPU interpreter), since Triton fixes its mode at import.
"""

import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, torch
torch.set_num_threads(1)
from ssd.engine.kv_cache import KVCache
from ssd.models.loading import load_model
model = load_model(sys.argv[1], max_len=32)
vocab = model.config.vocab_size
g = torch.Generator().manual_seed(0)
prompt = torch.randint(0, vocab, (2, 6), generator=g)
steps = [torch.randint(0, vocab, (2, t), generator=g) for t in (1, 3)]
branch = torch.randint(0, vocab, (4, 2), generator=g)

def run(fused):
    model.use_triton_kernels(fused)
    cache = KVCache.for_model(model.config, 10, 32, torch.float32, "cpu")
    slots = torch.arange(2)
    out = [model(prompt, torch.arange(6).expand(2, -1), cache, slots, prefill=True)]
    start = 6
    for tokens in steps:
        pos = start + torch.arange(tokens.shape[1]).expand(2, -1)
        out.append(model(tokens, pos, cache, slots))
        start += tokens.shape[1]
    # 4 branches (2 per sequence) after position `start`: shared prefix vs copied prefix
    owner = torch.tensor([0, 0, 1, 1])
    pos = start + torch.arange(2).expand(4, -1)
    own = torch.arange(2, 6)
    shared = model(branch, pos, cache, own, prefix_slots=owner, prefix_lens=torch.full((4,), start))
    for layer in range(model.config.num_layers):
        cache.k[layer][own + 4] = cache.k[layer][owner]
        cache.v[layer][own + 4] = cache.v[layer][owner]
    copied = model(branch, pos, cache, own + 4)
    out += [shared, copied]
    return out

plain, fused = run(False), run(True)
print(json.dumps({"fused_vs_plain": [(a - b).abs().max().item() for a, b in zip(plain, fused)],
                  "shared_vs_copied": [(plain[-2] - plain[-1]).abs().max().item(),
                                       (fused[-2] - fused[-1]).abs().max().item()]}))
"""


def test_triton_kernels_in_the_model_match_torch(qwen3_pair):
    # Qwen3 uses every fused path: QK-norm, residual + RMSNorm, rotary + cache write, decode attention, silu * up
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(qwen3_pair[0])], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(diffs["fused_vs_plain"]) == 5 and max(diffs["fused_vs_plain"]) < 1e-4, diffs
    assert max(diffs["shared_vs_copied"]) < 1e-5, diffs
