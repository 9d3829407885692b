"""Image data for LeJEPA pretraining: Fashion-MNIST (IDX files) and scikit-learn's digits for tests."""
