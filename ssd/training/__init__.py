"""Training our own Llama-architecture target/draft pair on the offline corpus (`python -m ssd.training.train_pair`).

- `train_pair`: the Hydra app: train the target, then the draft (optionally distilled from the target), evaluate
  both on the validation split, export Hugging Face checkpoints, write experiments/ssd/results/pair_<scale>.json.
- `windows`: token windows from the uint16 corpus (random training batches, fixed validation windows).
- `objectives`: next-token cross-entropy, distillation KL, greedy agreement.
- `hf_checkpoint`: building `transformers.LlamaForCausalLM`, exporting/reloading HF directories.
"""
