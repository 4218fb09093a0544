"""A linear softmax head trained in numpy: standardised features, L2 on the weights, full-batch
descent preconditioned by a bound on the Hessian, with Nesterov momentum restarted when it
overshoots. Deterministic: it starts from zero and draws nothing at random."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Head", "objective", "softmax", "train_head"]


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
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])  # the last column carries the bias
    onehot = np.eye(classes)[targets]
    theta = _descend(z, onehot, l2, _Bound(z, classes, l2), epochs)
    w, b = theta[:-1], theta[-1]
    loss = objective(z[:, :-1], onehot, w, b, l2)
    weights = w / scale[:, None]
    return Head(weights=weights, bias=b - mean @ weights, loss=loss)


class _Bound:
    """Böhning's bound on the Hessian, ½(I − 11ᵀ/K) ⊗ zᵀz/n + l2·I, as a preconditioner: a step
    of its inverse times the gradient never increases the objective, and it takes the features'
    correlations into account (plain gradient steps crawl along them). Both Kronecker factors
    are diagonalised once, so applying the inverse costs two small matrix products."""

    def __init__(self, z: np.ndarray, classes: int, l2: float) -> None:
        eigen, self.features = np.linalg.eigh(z.T @ z / len(z))
        centring = np.eye(classes) - 1.0 / classes
        spread, self.classes = np.linalg.eigh(0.5 * centring)
        self.scale = np.maximum(np.outer(np.clip(eigen, 0, None), np.clip(spread, 0, None)) + l2, 1e-12)

    def solve(self, gradient: np.ndarray) -> np.ndarray:
        rotated = self.features.T @ gradient @ self.classes
        return np.asarray(self.features @ (rotated / self.scale) @ self.classes.T)


def _gradient(z: np.ndarray, onehot: np.ndarray, theta: np.ndarray, l2: float) -> np.ndarray:
    gradient = z.T @ ((softmax(z @ theta) - onehot) / len(z))
    gradient[:-1] += l2 * theta[:-1]  # the bias row is not regularised
    return np.asarray(gradient)


def objective(z: np.ndarray, onehot: np.ndarray, w: np.ndarray, b: np.ndarray, l2: float) -> float:
    logits = z @ w + b
    top = logits.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return float(np.mean(log_norm - (logits * onehot).sum(axis=1)) + 0.5 * l2 * np.sum(w * w))


def _descend(z: np.ndarray, onehot: np.ndarray, l2: float, bound: _Bound, epochs: int) -> np.ndarray:
    """Preconditioned steps with Nesterov momentum, restarted whenever momentum points uphill."""
    theta = np.zeros((z.shape[1], onehot.shape[1]))
    ahead, t = theta, 1.0
    for _ in range(epochs):
        gradient = _gradient(z, onehot, ahead, l2)
        new = ahead - bound.solve(gradient)
        if np.sum(gradient * (new - theta)) > 0:
            t = 1.0
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        ahead = new + (t - 1) / t_next * (new - theta)
        theta, t = new, t_next
    return theta
