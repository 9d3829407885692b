"""Our models with the Triton decode kernels (fused RMSNorm + residual, rotary) give the torch path's logits.

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
out = {}
for path in sys.argv[1:]:
    model = load_model(path, max_len=32)
    ids = torch.randint(0, model.config.vocab_size, (2, 6), generator=torch.Generator().manual_seed(0))
    pos = torch.arange(6).expand(2, -1)
    def logits():
        return model(ids, pos, KVCache.for_model(model.config, 2, 32, torch.float32, "cpu"), torch.arange(2))
    plain = logits()
    model.use_triton_kernels(True)
    fused = logits()
    out[path] = (fused - plain).abs().max().item()
print(json.dumps(out))
"""


def test_triton_kernels_in_the_model_match_torch(qwen3_pair):
    paths = [str(qwen3_pair[0])]  # Qwen3 uses every fused path: QK-norm, residual + RMSNorm, rotary
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, *paths], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(d < 1e-4 for d in diffs.values()), diffs
