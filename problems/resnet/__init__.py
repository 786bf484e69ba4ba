"""The residual-network family (Guenther et al., SIMODS 2020): forward-Euler ResNets as control problems.

``dense``: fully connected layers on (width, batch) states, with their Numba kernels in
``dense_kernels``; ``conv``: 3x3 convolutional layers on (H, W, C, batch) states, kernels in
``conv_kernels``; ``classifier``: the softmax cross-entropy both end with.  Problems built on a
family member (Peaks, MNIST, user data, ...) subclass it and only supply data sets and plots.
"""
from .conv import ConvResNet
from .dense import UNLABELLED, Classification, ResNet

__all__ = ["UNLABELLED", "Classification", "ConvResNet", "ResNet"]
