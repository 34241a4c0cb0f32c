"""The derivation as plain data: what the engine found, with the steps that prove it.

Documents and code are printed from these objects; nothing here knows about LaTeX,
Markdown or NumPy.
"""

from dataclasses import dataclass

import sympy as sp

from .catalog import Definition
from .spec import NetworkSpec


@dataclass(frozen=True)
class Step:
    """One line of a derivation: `lhs = expr`, and why it follows from the line before."""

    expr: sp.Expr
    reason: str


@dataclass(frozen=True)
class ActivationRule:
    """An activation and its derivative, as the engine derived it.

    Elementwise: `forward` is f(z), `derivative` is f'(z), and `in_output` is g(a) with
    f'(z) = g(f(z)) when the engine found and verified one (else None).
    Softmax: `forward` is the indexed a_j, `derivative` the Jacobian da_j/dz_k.
    """

    definition: Definition
    forward: sp.Expr
    derivative: sp.Expr
    in_output: sp.Expr | None
    verified_by: str  # how in_output was checked: "symbolic", "numeric" or ""
    steps: tuple[Step, ...]

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def is_softmax(self) -> bool:
        return self.definition.is_softmax

    @property
    def backward_form(self) -> sp.Expr:
        """What the backward pass evaluates: in a where possible, otherwise in z."""
        return self.in_output if self.in_output is not None else self.derivative


@dataclass(frozen=True)
class LossRule:
    definition: Definition
    per_unit: sp.Expr  # l(a, y) for one output unit
    gradient: sp.Expr  # dl/da

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass(frozen=True)
class OutputDelta:
    """delta = dl/dz at the output layer, derived through the chain rule and simplified.

    `result` is per unit: in the scalars a, y (or z, y) for an elementwise output, in the
    indexed a[k], y[k] for softmax. `collapsed` is the constant c when result = c (a - y)
    was proved (c = 1 for the textbook pairs), else None.
    """

    activation: ActivationRule
    loss: LossRule
    steps: tuple[Step, ...]
    result: sp.Expr
    collapsed: sp.Expr | None
    assumptions: tuple[sp.Expr, ...]  # equations used, e.g. Eq(Sum(y_j), 1)
    uses_z: bool  # the result needs the pre-activation z, not only a
    loss_from_logits: sp.Expr | None  # a stabler per-unit loss in z, y when one was found


@dataclass(frozen=True)
class DenseRules:
    """The dense layer z_i = sum_j W_ij a_prev_j + b_i, differentiated once at generic width."""

    pre_activation: sp.Expr  # z_i
    grad_weight: sp.Expr  # dl/dW_ij in terms of delta_i and a_prev_j
    grad_bias: sp.Expr  # dl/db_i
    grad_input: sp.Expr  # dl/da_prev_j = sum_i W_ij delta_i
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class PenaltyRules:
    """L2 weight decay (lambda/2) sum_ij W_ij^2 per layer, added to the batch-mean loss."""

    strength: sp.Symbol  # lambda, generic; the network's value is spec.l2
    per_layer: sp.Expr
    grad_weight: sp.Expr  # dR/dW_ij
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Derivation:
    spec: NetworkSpec
    activations: tuple[ActivationRule, ...]  # one per layer (shared objects when repeated)
    loss: LossRule
    output: OutputDelta
    dense: DenseRules
    penalty: PenaltyRules | None = None  # when the network has an L2 weight decay

    def distinct_activations(self) -> list[ActivationRule]:
        seen = {}
        for rule in self.activations:
            seen.setdefault(rule.name, rule)
        return list(seen.values())
