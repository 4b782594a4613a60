"""The small multilayer perceptron every neural policy uses, and its export to numpy arrays."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from fhir_mapping.dosing import N_DOSE_CLASSES


class MLP(nn.Module):
    """ReLU layers ``hidden_sizes`` wide, then a linear layer with one output per dose class."""

    def __init__(self, n_features: int, hidden_sizes: tuple[int, ...], n_outputs: int = N_DOSE_CLASSES) -> None:
        super().__init__()
        sizes = (n_features, *hidden_sizes, n_outputs)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = torch.relu_(layer(x))  # in place: the layer's output is saved by nothing but the ReLU's own backward
        return self.layers[-1](x)


def export_mlp(network: MLP, output_scale: float = 1.0) -> dict[str, np.ndarray]:
    """``layer{i}.weight``/``layer{i}.bias`` float32 arrays; the output layer multiplied by ``output_scale``."""
    arrays: dict[str, np.ndarray] = {}
    last = len(network.layers) - 1
    layer: nn.Linear
    for i, layer in enumerate(network.layers):  # type: ignore[assignment]
        scale = output_scale if i == last else 1.0
        arrays[f"layer{i}.weight"] = (layer.weight.detach().cpu().numpy() * scale).astype(np.float32)
        arrays[f"layer{i}.bias"] = (layer.bias.detach().cpu().numpy() * scale).astype(np.float32)
    return arrays
