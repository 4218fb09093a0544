"""A linear softmax head trained in numpy: standardised features, L2 on the weights, full-batch
accelerated gradient descent (Nesterov, restarted when it overshoots). Deterministic: it starts
from zero and draws nothing at random."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Head", "softmax", "train_head"]


@dataclass(frozen=True)
class Head:
    """Scores on raw features: softmax(x @ weights + bias); standardisation is folded in."""

    weights: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    loss: float  # the training objective at the end

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(features.astype(np.float64) @ self.weights + self.bias)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def train_head(features: np.ndarray, targets: np.ndarray, classes: int, l2: float, epochs: int) -> Head:
    """Minimise mean cross-entropy + l2/2 ‖W‖² over `epochs` full-batch steps."""
    x = features.astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-8] = 1.0  # a constant feature is zero once centred: any scale does
    z = (x - mean) / scale
    onehot = np.eye(classes)[targets]
    step = 1.0 / _smoothness(z, l2)
    w, b = _descend(z, onehot, l2, step, epochs)
    loss = _objective(z, onehot, w, b, l2)
    weights = w / scale[:, None]
    return Head(weights=weights, bias=b - mean @ weights, loss=loss)


def _smoothness(z: np.ndarray, l2: float) -> float:
    """A Lipschitz constant of the gradient: ½ λmax([z 1]ᵀ[z 1] / n) + l2 (Böhning's bound)."""
    ones = np.hstack([z, np.ones((len(z), 1))])
    gram = ones @ ones.T if len(z) < ones.shape[1] else ones.T @ ones
    return 0.5 * float(np.linalg.eigvalsh(gram)[-1]) / len(z) + l2


def _gradient(
    z: np.ndarray, onehot: np.ndarray, w: np.ndarray, b: np.ndarray, l2: float
) -> tuple[np.ndarray, np.ndarray]:
    error = (softmax(z @ w + b) - onehot) / len(z)
    return z.T @ error + l2 * w, error.sum(axis=0)


def _objective(z: np.ndarray, onehot: np.ndarray, w: np.ndarray, b: np.ndarray, l2: float) -> float:
    logits = z @ w + b
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return float(np.mean(log_norm - (logits * onehot).sum(axis=1)) + 0.5 * l2 * np.sum(w * w))


def _descend(
    z: np.ndarray, onehot: np.ndarray, l2: float, step: float, epochs: int
) -> tuple[np.ndarray, np.ndarray]:
    w = np.zeros((z.shape[1], onehot.shape[1]))
    b = np.zeros(onehot.shape[1])
    yw, yb, t = w, b, 1.0
    for _ in range(epochs):
        gw, gb = _gradient(z, onehot, yw, yb, l2)
        nw, nb = yw - step * gw, yb - step * gb
        if np.sum(gw * (nw - w)) + np.sum(gb * (nb - b)) > 0:  # momentum overshot: restart it
            t = 1.0
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        momentum = (t - 1) / t_next
        yw, yb = nw + momentum * (nw - w), nb + momentum * (nb - b)
        w, b, t = nw, nb, t_next
    return w, b
