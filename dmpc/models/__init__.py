"""D-MPC models, one per file: diffusion denoisers, action proposal, dynamics, reward, value; baselines."""
