import pytest
import torch

from data_constrained.export import export_hf
from data_constrained.model import ModelConfig, Transformer


@pytest.mark.parametrize("variant", [{}, {"n_kv_heads": 2, "tie_embeddings": True}])
def test_hf_export_reloads_with_identical_logits(tmp_path, tiny_dir, variant):
    from transformers import AutoTokenizer, LlamaForCausalLM

    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=512, d_model=64, n_layers=2, n_heads=4, max_seq_len=64, **variant))
    with torch.no_grad():  # non-trivial norm gains, so a wrong mapping of them would show
        for p in model.parameters():
            if p.dim() == 1:
                p.normal_(1.0, 0.2)
    model.eval()
    export_hf(model, tmp_path, tiny_dir)
    hf = LlamaForCausalLM.from_pretrained(tmp_path, torch_dtype=torch.float32).eval()
    x = torch.randint(0, 512, (3, 50))
    with torch.no_grad():
        diff = (hf(x).logits - model(x)).abs().max().item()
    assert diff < 1e-4
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.decode(tok.encode("The team reads a long letter.")) == "The team reads a long letter."
