"""Small teacher and student networks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["mlp", "count_parameters"]


def mlp(
    in_features: int,
    hidden: Sequence[int],
    num_classes: int,
    dropout: float = 0.0,
) -> nn.Sequential:
    """A ReLU multilayer perceptron: ``(B, in_features) -> (B, num_classes)`` logits.

    Hinton et al. (2015) distil a 2×1200 ReLU net with dropout into a 2×800 net on MNIST;
    the digits notebooks use the same shape at a smaller scale.
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
