"""Every symbol, identifier and equation label, in one place.

Documents and generated code share the equation labels, so a line of `backward`
can name the equation it implements.
"""

import sympy as sp

# Per-unit scalars: the activation variable, pre-activation, activation, target.
X = sp.Symbol("x", real=True)
Z = sp.Symbol("z", real=True)
A = sp.Symbol("a", real=True)
Y = sp.Symbol("y", real=True)

# Generic-width index notation for the dense layer and softmax.
i, j, k = sp.symbols("i j k", integer=True, positive=True)
n, m = sp.symbols("n m", integer=True, positive=True)  # units of this layer / the layer below
W = sp.IndexedBase("W", real=True)
b = sp.IndexedBase("b", real=True)
z = sp.IndexedBase("z", real=True)
a = sp.IndexedBase("a", real=True)
a_prev = sp.IndexedBase("a_prev", real=True)
y = sp.IndexedBase("y", real=True)
delta = sp.IndexedBase("delta", real=True)
ell = sp.Function("ell")  # the loss of one sample, as a function for the chain rule
# log sum_j exp(z_j) of a softmax layer, per sample: the forward pass saves it for the loss.
LOG_NORMALIZER = sp.Symbol("lse", real=True)

# Equation labels. Documents show each as a tag, (delta-2), and LaTeX also sets
# \label{eq:delta-2}; every line of generated `backward` cites the same text.
EQ_FORWARD = "forward"
EQ_LOSS = "loss"
EQ_BATCH_LOSS = "batch-loss"
EQ_OUTPUT_DELTA = "output-delta"
EQ_HIDDEN_DELTA = "hidden-delta"
EQ_GRAD_W = "grad-W"
EQ_GRAD_B = "grad-b"
EQ_BATCH_DELTA = "batch-delta"
EQ_BATCH_GRAD_W = "batch-grad-W"
EQ_BATCH_GRAD_B = "batch-grad-b"
EQ_PENALTY = "penalty"
EQ_GRAD_PENALTY = "grad-penalty"


def eq_activation(name: str) -> str:
    return f"act-{name}"


def eq_forward(layer: int) -> str:
    return f"forward-{layer}"


def eq_delta(layer: int) -> str:
    return f"delta-{layer}"


def eq_grad_w(layer: int) -> str:
    return f"grad-W{layer}"


def eq_grad_b(layer: int) -> str:
    return f"grad-b{layer}"


# The same label as a LaTeX \label key and as a MyST (Jupyter Book) label: MyST labels
# may not contain ':', so its prefix is 'eq-' where LaTeX's is 'eq:'.
def latex_label(label: str) -> str:
    return f"eq:{label}"


def myst_label(label: str) -> str:
    return f"eq-{label}"


# Identifiers in generated code.
def weight(layer: int) -> str:
    return f"W{layer}"


def bias(layer: int) -> str:
    return f"b{layer}"


def gradient(param: str) -> str:
    """The generated code's name for a parameter's gradient: dW2 for W2."""
    return f"d{param}"


def param_names(depth: int) -> list[str]:
    return [name for l in range(1, depth + 1) for name in (weight(l), bias(l))]
