"""The inference engine: KV cache, model runner, the batch state on the device, round graphs, sampler, sequences,
telemetry, the LLM API, tensor parallelism and the multi-process layouts (draft on its own device)."""
