"""What temperature does to a distribution: the quantities notebooks 01 and 02 plot.

Functions take logits or probabilities of shape ``(..., V)`` (torch tensors, or anything
``torch.as_tensor`` accepts) and work along the last dimension. Entropies are in nats.

Of kdkit it imports only the temperature check of :mod:`kdkit.losses`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from kdkit.losses import check_temperature

__all__ = [
    "softened",
    "entropy",
    "effective_classes",
    "mass_outside_top",
    "wrong_class_ratios",
    "temperature_sweep",
]


def _as_float_tensor(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if t.dim() < 1:
        raise ValueError(f"{name} must have at least one dimension (..., V), got a scalar.")
    return t


def softened(logits, T: float = 1.0) -> torch.Tensor:
    """Softened softmax ``softmax(logits / T)``: ``(..., V) -> (..., V)``.

    Large T flattens the distribution towards uniform; T -> 0 approaches one-hot argmax.
    """
    T = check_temperature(T)
    return torch.softmax(_as_float_tensor(logits, "logits") / T, dim=-1)


def entropy(probs) -> torch.Tensor:
    """Shannon entropy ``−Σ p log p`` in nats: ``(..., V) -> (...)``. Lies in [0, log V]."""
    p = _as_float_tensor(probs, "probs")
    return -torch.special.xlogy(p, p).sum(dim=-1)


def effective_classes(probs) -> torch.Tensor:
    """``exp(entropy)``: how many equally likely classes carry the same uncertainty, ``(...)``."""
    return entropy(probs).exp()


def mass_outside_top(probs, target=None) -> torch.Tensor:
    """Probability outside the target class (``1 − p[target]``), ``(...)``.

    ``target`` defaults to each row's argmax. A one-hot label has 0 here: this is the part of
    a soft label that a hard label cannot carry.
    """
    p = _as_float_tensor(probs, "probs")
    idx = p.argmax(dim=-1) if target is None else torch.as_tensor(target, dtype=torch.long)
    idx = idx.expand(p.shape[:-1])
    return 1.0 - p.gather(-1, idx.unsqueeze(-1)).squeeze(-1)


def wrong_class_ratios(probs, target) -> torch.Tensor:
    """``p_j / p_target`` for every class j, ``(..., V)``; the target's own entry is NaN.

    Hinton's "dark knowledge": a 2 may be 1e-6 times as likely to be a 3 and 1e-9 times as
    likely to be a 7. Since ``p_i / p_j = exp((z_i − z_j) / T)``, raising T pulls every
    ratio towards 1 and makes these differences visible to a student.
    """
    p = _as_float_tensor(probs, "probs")
    idx = torch.as_tensor(target, dtype=torch.long).expand(p.shape[:-1])
    p_target = p.gather(-1, idx.unsqueeze(-1))  # (..., 1)
    ratios = p / p_target  # (..., V)
    return ratios.scatter(-1, idx.unsqueeze(-1), float("nan"))


def temperature_sweep(logits, temperatures: Sequence[float]) -> dict[str, torch.Tensor]:
    """Softened distributions and summaries for one logit vector ``(V,)`` at several T.

    Returns ``probs`` ``(K, V)``, ``entropy`` ``(K,)``, ``mass_outside_top`` ``(K,)`` (outside
    the argmax of the logits, which does not move with T) and ``temperatures`` ``(K,)``.
    """
    z = _as_float_tensor(logits, "logits")
    if z.dim() != 1:
        raise ValueError(
            f"temperature_sweep takes one logit vector (V,), got shape {tuple(z.shape)}."
        )
    temps = torch.as_tensor(list(temperatures), dtype=z.dtype)
    probs = torch.stack([softened(z, float(T)) for T in temps])  # (K, V)
    return {
        "temperatures": temps,
        "probs": probs,
        "entropy": entropy(probs),
        "mass_outside_top": mass_outside_top(probs, z.argmax()),
    }
