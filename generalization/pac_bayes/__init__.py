"""PAC-Bayes compression bounds after Lotfi et al. (2022): subspace training, quantization, arithmetic coding,
and the bound from the prefix-free code length.

    bounds.py            kl-inverse (Langford-Seeger) and Catoni bounds for a point-mass posterior of C bits
    arithmetic_coding.py integer arithmetic coder (static or adaptive frequencies), encode + decode
    subspace.py          theta = theta0 + P z with dense or Kronecker-product random projections P
    quantize.py          1-D k-means centroids, assignment, centroid learning on the training loss
    compress.py          the pipeline: train in a subspace, quantize, code, bound
    gaussian.py          Gaussian-posterior bound around trained weights (prior at the init), Fig. 1e proxy
"""
