"""The ResNet family's classifier: dense logits W_c u + c on the final state and the mean softmax
cross-entropy with its adjoint (Guenther et al., SIMODS 2020, Sec. 2: the loss of the terminal
layer).  Shared by the dense and convolutional members; features are (features, batch)."""
import numpy as np


def logits(Wc, c, feats):
    """(classes, batch) logits of the (features, batch) final state."""
    return Wc @ feats + c[:, None]


def probabilities(Wc, c, feats):
    """(classes, batch) softmax probabilities of the logits (each column sums to 1)."""
    z = logits(Wc, c, feats)
    ez = np.exp(z - z.max(axis=0))
    return ez / ez.sum(axis=0)


def cross_entropy(Wc, c, feats, y, lam, gWc, gc):
    """Mean softmax cross-entropy of ``logits(Wc, c, feats)`` against the labels ``y`` (batch,).

    Returns the loss; sets ``lam`` (features * batch, flat) to its derivative by the features and
    adds the derivatives by Wc and c to ``gWc``, ``gc``."""
    z = logits(Wc, c, feats)
    z = z - z.max(axis=0)
    ez = np.exp(z)
    S = ez.sum(axis=0)
    B = feats.shape[1]
    idx = np.arange(B)
    loss = np.sum(np.log(S) - z[y, idx]) / B
    P = ez / S
    P[y, idx] -= 1.0
    P /= B
    gWc += P @ feats.T
    gc += P.sum(axis=1)
    lam[:] = (Wc.T @ P).ravel()
    return loss
