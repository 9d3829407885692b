"""Diffusion Model Predictive Control (Zhou et al., TMLR 2025, arXiv 2410.05364) in JAX/Flax/optax."""
