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
    # deep and wide
    "deep": ("5-" + "-".join(["6:tanh", "6:relu", "6:sigmoid", "6:elu", "6:swish", "6:gelu"] * 2) + "-3:softmax", "ce"),
    "wide": ("30-64:relu-40:leaky_relu-10:sigmoid", "bce"),
}
