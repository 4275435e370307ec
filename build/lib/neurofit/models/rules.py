"""Learning rules other than backprop, for any architecture built from nn.Conv2d and nn.Linear.

The forward pass is the ordinary one. The backward pass computes each layer's weight gradient
exactly (it is local: input activity x output error) but sends the error to the layer below
through a *feedback* matrix B instead of the transposed forward weights W^T:

- ``feedback_alignment`` (Lillicrap et al. 2016): B's direction is random and fixed for the whole
  training, drawn from the layer's default initialisation from a seed; at every step it is scaled
  to the norm of the forward weights W (as in Moskovitz et al. 2018), so the error sent down keeps
  backprop's scale as W grows instead of vanishing relative to the forward pass (which matters
  under batch norm, whose backward pass divides by a scale that grows with W, and under SGD);
- ``sign_symmetry`` (Liao, Leibo & Poggio 2016): B = sign(W) * mean|W|, recomputed at every step
  (only the sign of W is transported; the scalar keeps the error's scale comparable to backprop's).

:func:`apply_learning_rule` changes the class of each conv/linear module in place to a rule-aware
subclass, so parameters, state-dict keys and hooks stay as they are: weights trained with any rule
save and load into the plain architecture and vice versa. Feedback matrices are non-persistent
buffers: they are not part of the model (a trained network is its forward weights), and they are
regenerated identically from the seed and module name, so a resumed run uses the same ones.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.grad import conv2d_input, conv2d_weight

from neurofit.models.catalog import LEARNING_RULES


# custom_fwd / custom_bwd: under torch.autocast (amp: true on CUDA) the backward pass runs in the
# forward's autocast state, so the error and the feedback matrix meet in one dtype.
class _FeedbackConv2d(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, feedback: torch.Tensor,
                stride: Any, padding: Any, dilation: Any, groups: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight, feedback)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, feedback = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # the error sent down goes through B, not W
            grad_x = conv2d_input(x.shape, feedback, grad_out, stride, padding, dilation, groups)
        if ctx.needs_input_grad[1]:
            grad_w = conv2d_weight(x, weight.shape, grad_out, stride, padding, dilation, groups)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None, None


class _FeedbackLinear(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                feedback: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, feedback)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, feedback = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ feedback
        flat_out = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[1]:
            grad_w = flat_out.T @ x.reshape(-1, x.shape[-1])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = flat_out.sum(0)
        return grad_x, grad_w, grad_b, None



class _RuleMixin:
    """Shared by the rule-aware conv and linear modules: which feedback the backward pass uses."""

    rule: str
    weight: nn.Parameter
    feedback: torch.Tensor | None

    def feedback_matrix(self) -> torch.Tensor:
        if self.rule == "sign_symmetry":
            w = self.weight.detach()
            return torch.sign(w) * w.abs().mean()
        assert self.feedback is not None
        w = self.weight.detach()
        return self.feedback * (w.norm() / self.feedback.norm())


class RuleConv2d(_RuleMixin, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FeedbackConv2d.apply(x, self.weight, self.bias, self.feedback_matrix(), self.stride, self.padding,
                                     self.dilation, self.groups)


class RuleLinear(_RuleMixin, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FeedbackLinear.apply(x, self.weight, self.bias, self.feedback_matrix())


def _random_feedback(weight: torch.Tensor, seed: int, name: str) -> torch.Tensor:
    """Fixed random feedback with the scale of PyTorch's default init (uniform +-1/sqrt(fan_in))."""
    generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{name}".encode()))
    fan_in = weight[0].numel()
    bound = 1.0 / fan_in**0.5
    values = (torch.rand(weight.shape, generator=generator, dtype=torch.float32) * 2 - 1) * bound
    return values.to(device=weight.device, dtype=weight.dtype)


def apply_learning_rule(model: nn.Module, rule: str, seed: int) -> nn.Module:
    """Make every nn.Conv2d / nn.Linear of ``model`` learn by ``rule`` (in place; returns ``model``)."""
    if rule not in LEARNING_RULES:
        raise ValueError(f"unknown learning_rule {rule!r}; known: {list(LEARNING_RULES)}")
    if rule == "backprop":
        return model
    for name, module in model.named_modules():
        if type(module) is nn.Conv2d:
            if module.padding_mode != "zeros" or isinstance(module.padding, str):
                raise ValueError(f"learning_rule {rule!r}: conv {name!r} uses padding {module.padding!r}/"
                                 f"{module.padding_mode!r}; only numeric zero padding is supported")
            module.__class__ = RuleConv2d
        elif type(module) is nn.Linear:
            module.__class__ = RuleLinear
        else:
            continue
        module.rule = rule
        feedback = _random_feedback(module.weight, seed, name) if rule == "feedback_alignment" else None
        module.register_buffer("feedback", feedback, persistent=False)
    return model


def feedback_matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """The fixed feedback matrices of a feedback-alignment model, by module name (copies)."""
    return {name: m.feedback.detach().clone() for name, m in model.named_modules()
            if isinstance(m, _RuleMixin) and m.feedback is not None}
