"""paperclub's shared layer: config, logging, results, checkpoints, seeding, devices, plotting, data.

Framework-agnostic: nothing here imports torch or jax at module top level.
"""
