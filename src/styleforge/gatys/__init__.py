"""Optimisation-based style transfer (Gatys et al. 2016): the driver and its PyTorch and NumPy engines."""
