"""Interpretability on one model: activation caches (HDF5), sparse autoencoders (formats, training),
SAE features of prompts, and steering hooks that edit the residual stream."""
