"""Recurrent networks for trial-structured tasks; the hidden state over time is the feature.

Every network has three named layers, read out at each time step: ``input`` (the input projection
``W_in x_t``), ``recurrent`` (the hidden state ``h_t``) and ``readout`` (the output logits ``W_out h_t``).

- ``vanilla``: a leaky (continuous-time) tanh RNN, ``h_t = (1 - a) h_{t-1} + a tanh(W h_{t-1} + W_in x_t + b)``
  with ``a = dt / tau`` (Song, Yang & Wang 2016); with ``dale: true`` the units are rectified (``relu``), 80 %
  excitatory and 20 % inhibitory, and each unit's outgoing recurrent weights keep its sign (``|W| * sign``).
- ``gru`` and ``lstm``: torch's cells; their hidden state ``h_t`` is the ``recurrent`` layer.
"""

from __future__ import annotations

import torch
from torch import nn

RECURRENT_ARCHITECTURES = ("vanilla", "gru", "lstm")
RECURRENT_LAYERS = ("input", "recurrent", "readout")


class RecurrentNet(nn.Module):
    def __init__(self, architecture: str, n_inputs: int, n_outputs: int, hidden: int = 64, dale: bool = False,
                 alpha: float = 0.5, excitatory_fraction: float = 0.8, gain: float = 1.0) -> None:
        super().__init__()
        if architecture not in RECURRENT_ARCHITECTURES:
            raise ValueError(f"architecture {architecture!r} is not recurrent; choose one of {RECURRENT_ARCHITECTURES}")
        if dale and architecture != "vanilla":
            raise ValueError("dale: true needs architecture: vanilla (E/I signs are defined for a rate RNN)")
        self.architecture, self.hidden, self.dale, self.alpha = architecture, hidden, dale, alpha
        self.input = nn.Linear(n_inputs, hidden)
        if architecture == "vanilla":
            self.recurrent = nn.Linear(hidden, hidden, bias=False)
            nn.init.normal_(self.recurrent.weight, 0.0, gain / hidden ** 0.5)
            if dale:
                with torch.no_grad():
                    self.recurrent.weight.abs_()
                n_exc = int(round(excitatory_fraction * hidden))
                sign = torch.ones(hidden)
                sign[n_exc:] = -n_exc / max(hidden - n_exc, 1)  # balanced: E and I columns sum to zero on average
                self.register_buffer("dale_sign", sign)
        elif architecture == "gru":
            self.recurrent = nn.GRUCell(hidden, hidden)
        else:
            self.recurrent = nn.LSTMCell(hidden, hidden)
        self.readout = nn.Linear(hidden, n_outputs)

    def recurrent_weight(self) -> torch.Tensor:
        """The effective recurrent matrix of a vanilla RNN (sign-constrained columns under Dale's law)."""
        weight = self.recurrent.weight
        return weight.abs() * self.dale_sign[None, :] if self.dale else weight

    def phi(self, u: torch.Tensor) -> torch.Tensor:
        return torch.relu(u) if self.dale else torch.tanh(u)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``x``: ``(time, batch, input)`` -> each named layer ``(time, batch, units)``."""
        drive = self.input(x)
        h = torch.zeros(x.shape[1], self.hidden, device=x.device, dtype=drive.dtype)
        c = torch.zeros_like(h)
        states = []
        weight = self.recurrent_weight() if self.architecture == "vanilla" else None
        for t in range(x.shape[0]):
            if self.architecture == "vanilla":
                h = (1 - self.alpha) * h + self.alpha * self.phi(h @ weight.T + drive[t])
            elif self.architecture == "gru":
                h = self.recurrent(drive[t], h)
            else:
                h, c = self.recurrent(drive[t], (h, c))
            states.append(h)
        hidden = torch.stack(states)
        return {"input": drive, "recurrent": hidden, "readout": self.readout(hidden)}
