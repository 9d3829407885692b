"""Llama / Qwen3 decoders for inference, HF checkpoint loading, tiny random pairs."""
