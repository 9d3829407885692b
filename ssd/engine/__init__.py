"""The inference engine: KV cache, model runner, sampler, sequences, telemetry, the LLM API, 2-process layout."""
