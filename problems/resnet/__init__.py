"""The residual-network family (Guenther et al., SIMODS 2020): forward-Euler ResNets as control problems.

``dense``: fully connected layers on (width, batch) states, with their Numba kernels in
``dense_kernels``.  Problems built on a family member (Peaks, user data, ...) subclass it and
only supply data sets and plots.
"""
from .dense import Classification, ResNet

__all__ = ["Classification", "ResNet"]
