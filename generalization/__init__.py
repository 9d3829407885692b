"""Wilson (2025), "Deep Learning is Not So Mysterious or Different", and Lotfi et al. (2022) PAC-Bayes
compression bounds: soft inductive bias, benign overfitting, double descent, effective dimensionality,
flat-minima volume and non-vacuous generalization bounds, each reproduced from real or procedural data."""
