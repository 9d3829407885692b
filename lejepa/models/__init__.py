"""LeWM models: ViT encoder + BatchNorm projector, AdaLN-zero predictor, the world model and its baselines."""
