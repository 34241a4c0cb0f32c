"""The one table of cases (architecture x activation x loss) that drives the code tests."""

ELEMENTWISE = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "swish", "gelu")

# id: (inline spec, loss)
CASES = {
    # every built-in activation in a hidden layer
    **{f"hidden-{name}": (f"4-5:{name}-3:softmax", "ce") for name in ELEMENTWISE},
    # every sensible output activation with every loss: collapsing and not
    "identity-mse": ("3-4:tanh-2:identity", "mse"),
    "sigmoid-mse": ("3-4:tanh-2:sigmoid", "mse"),
    "sigmoid-bce": ("3-4:tanh-2:sigmoid", "bce"),
    "sigmoid-ce": ("3-4:tanh-2:sigmoid", "ce"),
    "softmax-ce": ("3-4:relu-3:softmax", "ce"),
    "softmax-mse": ("3-4:relu-3:softmax", "mse"),
    "softmax-bce": ("3-4:relu-3:softmax", "bce"),
    "tanh-mse": ("3-4:sigmoid-2:tanh", "mse"),
    "relu-mse": ("3-4:sigmoid-2:relu", "mse"),
    "softplus-mse": ("3-4:sigmoid-2:softplus", "mse"),
    "gelu-mse": ("3-4:sigmoid-2:gelu", "mse"),
    "swish-out-mse": ("3-4:sigmoid-2:swish", "mse"),
    # width-1 layers, whose calls alternate between two buffers (one-element arrays at B = 1)
    "narrow-sigmoid-mse": ("2-2:sigmoid-1:sigmoid", "mse"),
    "narrow-swish-bce": ("3-4:swish-1:sigmoid", "bce"),
    "narrow-hidden": ("3-1:tanh-4:gelu-1:elu", "mse"),
    # deep and wide
    "deep": ("5-" + "-".join(["6:tanh", "6:relu", "6:sigmoid", "6:elu", "6:swish", "6:gelu"] * 2) + "-3:softmax", "ce"),
    "wide": ("30-64:relu-40:leaky_relu-10:sigmoid", "bce"),
}

# Custom formulas (issue 4): id: (spec, loss, activations, losses). Torch versions of
# each formula, written independently, live in test_codegen.py.
CUSTOM = {
    "mish": ("3-4:mish-2:sigmoid", "bce", {"mish": "x*tanh(log(1 + exp(x)))"}, {}),
    "kinked": ("3-4:kinked-4:absval-2:identity", "mse",
               {"kinked": "max(0, x) + 0.1*min(0, x)", "absval": "abs(x)"}, {}),
    "where": ("3-4:halfelu-2:identity", "quartic",
              {"halfelu": "where(x > 0, x, 0.5*(exp(x) - 1))"}, {"quartic": "(a - y)**4/4"}),
    "logcosh": ("3-4:tanh-2:identity", "logcosh", {}, {"logcosh": "log(cosh(a - y))"}),
    "softmax-kl": ("3-4:relu-3:softmax", "kl", {}, {"kl": "y*log(y) - y*log(a)"}),
    "respelled-sigmoid-bce": ("3-4:tanh-2:logit", "xent",
                              {"logit": "1/(1 + exp(-x))"}, {"xent": "-(y*log(a) + (1 - y)*log(1 - a))"}),
    "respelled-softmax-ce": ("3-4:tanh-3:softmax", "nll2", {}, {"nll2": "-y*log(a)"}),
    "respelled-identity-mse": ("3-4:tanh-2:lin", "half", {"lin": "x"}, {"half": "0.5*(y - a)**2"}),
}
