"""Network specifications: inline text and TOML files, good input and bad.

Every bad input must raise DerivgenError with one line that says what is wrong; the
command line shows that line as is (see test_cli.py)."""

import pytest

from derivgen import catalog, spec
from derivgen.cli import load_spec
from derivgen.errors import DerivgenError
from derivgen.spec import MAX_LAYERS, MAX_SPEC_LENGTH, MAX_WIDTH, parse_inline

BUILTIN_ACTIVATIONS = sorted(catalog.ACTIVATIONS)


def activations(network):
    return [layer.activation.name for layer in network.layers]


def refused(function, *args, **kwargs) -> str:
    """The message of the DerivgenError that function(*args) raises; it must be one line."""
    with pytest.raises(DerivgenError) as info:
        function(*args, **kwargs)
    message = str(info.value)
    assert message.strip(), "the message is empty"
    assert "\n" not in message and "\r" not in message, f"message is not one line: {message!r}"
    assert "\x00" not in message, f"message carries a raw NUL: {message!r}"
    return message


def toml_file(tmp_path, text: str, name: str = "net.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


LAYERS = '[[layers]]\nunits = 4\nactivation = "relu"\n'
GOOD_TOML = 'input = 3\n' + LAYERS


# --- inline specs that parse ------------------------------------------------------------

def test_inline_sizes_and_activations():
    network = parse_inline("784-128:relu-10:softmax")
    assert network.sizes == (784, 128, 10)
    assert network.input == 784
    assert network.depth == 2
    assert activations(network) == ["relu", "softmax"]
    assert network.loss.name == "ce"
    assert network.source == "784-128:relu-10:softmax"


def test_inline_single_layer():
    network = parse_inline("2-1:sigmoid")
    assert network.sizes == (2, 1)
    assert activations(network) == ["sigmoid"]


def test_inline_whitespace_around_parts_is_ignored():
    network = parse_inline("  3 - 4 : tanh -2:sigmoid ")
    assert network.sizes == (3, 4, 2)
    assert activations(network) == ["tanh", "sigmoid"]


@pytest.mark.parametrize(
    "written, canonical",
    [
        ("linear", "identity"),
        ("none", "identity"),
        ("identity", "identity"),
        ("logistic", "sigmoid"),
        ("silu", "swish"),
        ("SiLU", "swish"),
        ("lrelu", "leaky_relu"),
        ("leakyrelu", "leaky_relu"),
        ("leaky-relu", "leaky_relu"),
        ("Leaky_ReLU", "leaky_relu"),
        ("LEAKY-RELU", "leaky_relu"),
        ("ReLU", "relu"),
        ("TANH", "tanh"),
        ("Sigmoid", "sigmoid"),
        ("SoftPlus", "softplus"),
        ("GELU", "gelu"),
        ("elu", "elu"),
        ("SoftMax", "softmax"),
    ],
)
def test_activation_aliases_case_and_separators(written, canonical):
    network = parse_inline(f"3-2:{written}")
    assert activations(network) == [canonical]


@pytest.mark.parametrize(
    "written, canonical",
    [
        ("mse", "mse"),
        ("MSE", "mse"),
        ("squared_error", "mse"),
        ("squared-error", "mse"),
        ("l2", "mse"),
        ("sse", "mse"),
        ("bce", "bce"),
        ("binary_cross_entropy", "bce"),
        ("Binary-Cross-Entropy", "bce"),
        ("logloss", "bce"),
        ("log_loss", "bce"),
        ("log-loss", "bce"),
        ("ce", "ce"),
        ("cross_entropy", "ce"),
        ("cross-entropy", "ce"),
        ("Cross_Entropy", "ce"),
        ("categorical_cross_entropy", "ce"),
        ("nll", "ce"),
        ("NLL", "ce"),
    ],
)
def test_loss_aliases_case_and_separators(written, canonical):
    network = parse_inline("3-2:sigmoid", loss=written)
    assert network.loss.name == canonical
    assert network.loss_was_given is True


def test_every_builtin_activation_parses_in_the_output_layer():
    for name in BUILTIN_ACTIVATIONS:
        assert activations(parse_inline(f"3-2:{name}")) == [name]


def test_every_builtin_except_softmax_parses_in_a_hidden_layer():
    for name in BUILTIN_ACTIVATIONS:
        if name != "softmax":
            assert activations(parse_inline(f"3-4:{name}-2:identity")) == [name, "identity"]


def test_widths_at_the_limit_are_accepted():
    assert parse_inline(f"{MAX_WIDTH}-{MAX_WIDTH}:relu").sizes == (MAX_WIDTH, MAX_WIDTH)


def test_layers_at_the_limit_are_accepted():
    text = "2-" + "-".join(["2:tanh"] * MAX_LAYERS)
    assert parse_inline(text).depth == MAX_LAYERS


# --- the default loss follows the output activation ------------------------------------

@pytest.mark.parametrize(
    "text, loss",
    [
        ("3-2:softmax", "ce"),
        ("3-4:relu-2:softmax", "ce"),
        ("3-2:sigmoid", "bce"),
        ("3-4:tanh-2:logistic", "bce"),
        ("3-2:identity", "mse"),
        ("3-2:linear", "mse"),
        ("3-2:relu", "mse"),
        ("3-2:tanh", "mse"),
        ("3-4:sigmoid-2:tanh", "mse"),  # a hidden sigmoid does not decide
        ("3-2:swish", "mse"),
    ],
)
def test_default_loss_follows_the_output_activation(text, loss):
    network = parse_inline(text)
    assert network.loss.name == loss
    assert network.loss_was_given is False


def test_given_loss_is_marked_as_given_even_when_it_equals_the_default():
    network = parse_inline("3-2:softmax", loss="ce")
    assert network.loss.name == "ce"
    assert network.loss_was_given is True


def test_given_loss_overrides_the_default():
    network = parse_inline("3-2:softmax", loss="mse")
    assert network.loss.name == "mse"
    assert network.loss_was_given is True


def test_default_loss_for_a_custom_output_activation_is_mse():
    network = load_spec("3-2:mish", None, ("mish=x*tanh(softplus(x))",), ())
    assert network.loss.name == "mse"
    assert network.loss_was_given is False


# --- TOML specs that parse ---------------------------------------------------------------

FULL_TOML = '''\
name = "mnist_mlp"
input = 784
loss = "ce"
[[layers]]
units = 128
activation = "relu"
[[layers]]
units = 10
activation = "softmax"
[activations.mish]
expr = "x*tanh(log(1 + exp(x)))"
[losses.half_sq]
expr = "0.5*(a - y)**2"
'''


def test_toml_file(tmp_path):
    network = spec.load(toml_file(tmp_path, FULL_TOML))
    assert network.name == "mnist_mlp"
    assert network.sizes == (784, 128, 10)
    assert activations(network) == ["relu", "softmax"]
    assert network.loss.name == "ce"
    assert network.loss_was_given is True
    assert network.source == "net.toml"


def test_toml_file_with_any_extension_is_read_when_it_exists(tmp_path):
    network = spec.load(toml_file(tmp_path, GOOD_TOML, name="network.spec"))
    assert network.sizes == (3, 4)


def test_toml_default_name_and_loss(tmp_path):
    network = spec.load(toml_file(tmp_path, 'input = 5\n[[layers]]\nunits = 3\nactivation = "Logistic"\n'))
    assert network.name == "network"
    assert network.sizes == (5, 3)
    assert activations(network) == ["sigmoid"]
    assert network.loss.name == "bce"
    assert network.loss_was_given is False


@pytest.mark.parametrize("output, loss", [("softmax", "ce"), ("sigmoid", "bce"), ("tanh", "mse"), ("linear", "mse")])
def test_toml_default_loss_follows_output(tmp_path, output, loss):
    text = f'input = 3\n{LAYERS}[[layers]]\nunits = 2\nactivation = "{output}"\n'
    network = spec.load(toml_file(tmp_path, text))
    assert network.loss.name == loss
    assert network.loss_was_given is False


def test_toml_loss_alias(tmp_path):
    network = spec.load(toml_file(tmp_path, 'input = 3\nloss = "Cross-Entropy"\n'
                                            '[[layers]]\nunits = 2\nactivation = "softmax"\n'))
    assert network.loss.name == "ce"
    assert network.loss_was_given is True


def test_loss_option_overrides_the_toml_loss(tmp_path):
    path = toml_file(tmp_path, FULL_TOML)
    network = spec.load(path, loss="mse")
    assert network.loss.name == "mse"
    assert network.loss_was_given is True
    assert load_spec(path, "half_sq", (), ()).loss.name == "half_sq"


def test_toml_custom_definitions_are_usable_by_name(tmp_path):
    text = FULL_TOML.replace('activation = "relu"', 'activation = "Mish"').replace('loss = "ce"', 'loss = "half-sq"')
    network = spec.load(toml_file(tmp_path, text))
    assert activations(network) == ["mish", "softmax"]
    mish = network.layers[0].activation
    assert mish.builtin is False
    assert mish.formula == "x*tanh(log(1 + exp(x)))"
    assert mish.expr is not None
    assert network.loss.name == "half_sq"
    assert network.loss.builtin is False
    assert network.loss_was_given is True


def test_custom_definitions_do_not_leak_into_later_specs(tmp_path):
    spec.load(toml_file(tmp_path, FULL_TOML))
    load_spec("3-2:leaky", None, ("leaky=max(0.1*x, x)",), ())
    refused(parse_inline, "3-2:mish")
    refused(parse_inline, "3-2:leaky")
    refused(parse_inline, "3-2:relu", loss="half_sq")


def test_toml_widths_must_be_integers_not_strings(tmp_path):
    for text in ('input = "3"\n' + LAYERS, 'input = 3\n[[layers]]\nunits = "4"\nactivation = "relu"\n'):
        with pytest.raises(DerivgenError, match="positive integer"):
            spec.load(toml_file(tmp_path, text))


# --- custom definitions from the command-line options ------------------------------------

def test_activation_option_is_usable_by_name():
    network = load_spec("3-4:my_act-2:sigmoid", None, ("My-Act = x*sigmoid(x)",), ())
    assert activations(network) == ["my_act", "sigmoid"]
    assert network.layers[0].activation.builtin is False
    assert network.loss.name == "bce"


def test_loss_def_option_is_usable_by_name():
    network = load_spec("3-2:identity", "huber_ish", (), ("huber_ish=sqrt(1 + (a - y)**2) - 1",))
    assert network.loss.name == "huber_ish"
    assert network.loss.builtin is False
    assert network.loss_was_given is True


def test_several_options_at_once():
    network = load_spec("3-4:act_a-4:act_b-2:identity", "my_loss", ("act_a=tanh(x)", "act_b=x**3/3 + x"),
                        ("my_loss=(a - y)**4",))
    assert activations(network) == ["act_a", "act_b", "identity"]
    assert network.loss.name == "my_loss"


def test_options_add_to_toml_definitions(tmp_path):
    path = toml_file(tmp_path, FULL_TOML.replace('activation = "relu"', 'activation = "extra"'))
    network = load_spec(path, "half_sq", ("extra=x/(1 + abs(x))",), ())
    assert activations(network) == ["extra", "softmax"]
    assert network.loss.name == "half_sq"


def test_a_loss_named_like_an_activation_is_fine():
    # activations and losses are separate name spaces
    network = load_spec("3-2:relu", "relu", (), ("relu=(a - y)**2",))
    assert network.loss.name == "relu"
    assert activations(network) == ["relu"]
    assert network.layers[0].activation.builtin is True


# --- bad inline specs --------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, says",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("\t\n", "empty"),
        ("784", "no layers"),
        ("784-", "layer 1"),
        ("-10:relu", "input"),
        ("784-128", "width:activation"),
        ("784-128:relu-10", "width:activation"),
        ("784-0:relu", "between 1 and"),
        ("0-10:relu", "between 1 and"),
        ("784--5:relu", "layer 1"),
        ("784-1.5:relu", "positive integer"),
        ("784-abc:relu", "positive integer"),
        ("784-+5:relu", "positive integer"),
        ("784-1e3:relu", "positive integer"),
        ("784-0x10:relu", "positive integer"),
        ("7_84-10:relu", "positive integer"),
        ("784-\u0661\u0662:relu", "positive integer"),  # Arabic-Indic digits
        ("784-\uff11\uff10:relu", "positive integer"),  # full-width digits
        ("abc-10:relu", "input"),
        ("784:relu-10:relu", "input width"),
        ("784-10:", "activation"),
        ("784-:relu", "layer 1"),
        ("784-10:relu:relu", "unknown activation"),
        ("784-10:foo", "unknown activation"),
        ("784-10:re\x00lu", "unknown activation"),
        ("784-10:r\u00e9lu", "unknown activation"),
        ("784-10:re\nlu", "unknown activation"),
        ("784-10:\u202erelu", "unknown activation"),
        ("784-10:softmax-10:relu", "softmax"),
        ("784-10:softmax-10:softmax", "softmax"),
        (f"784-{MAX_WIDTH + 1}:relu", str(MAX_WIDTH)),
        (f"{MAX_WIDTH + 1}-10:relu", str(MAX_WIDTH)),
        ("784-99999999999999999999999:relu", str(MAX_WIDTH)),
        ("2-" + "-".join(["2:relu"] * (MAX_LAYERS + 1)), str(MAX_LAYERS)),
    ],
    ids=repr,
)
def test_bad_inline_spec(text, says):
    message = refused(parse_inline, text)
    assert says.lower() in message.lower(), message


def test_negative_width_names_the_layer_and_the_problem():
    message = refused(parse_inline, "784--5:relu")
    assert "empty" in message or "positive" in message, message


def test_unknown_activation_lists_the_known_ones():
    message = refused(parse_inline, "784-10:foo")
    assert "'foo'" in message
    for name in BUILTIN_ACTIVATIONS:
        assert name in message, name


def test_unknown_activation_lists_custom_ones_too():
    message = refused(load_spec, "3-2:nope", None, ("mine=x",), ())
    assert "mine" in message and "relu" in message


def test_softmax_in_a_hidden_layer_names_the_layer():
    message = refused(parse_inline, "3-4:relu-4:softmax-2:sigmoid")
    assert "layer 2" in message and "output" in message


def test_too_long_a_spec():
    message = refused(parse_inline, "3-" + "1" * MAX_SPEC_LENGTH + ":relu")
    assert str(MAX_SPEC_LENGTH) in message


@pytest.mark.parametrize("loss", ["hinge", "foo", "relu", "c e", "ce\x00", "\u00e7e"], ids=repr)
def test_unknown_loss(loss):
    message = refused(parse_inline, "3-2:softmax", loss=loss)
    assert "unknown loss" in message
    for name in catalog.LOSSES:
        assert name in message


@pytest.mark.parametrize("loss", ["", "   "], ids=repr)
def test_blank_loss(loss):
    message = refused(parse_inline, "3-2:softmax", loss=loss)
    assert "loss" in message


# --- bad TOML ----------------------------------------------------------------------------

def layer(units="4", activation='"relu"') -> str:
    return f"[[layers]]\nunits = {units}\nactivation = {activation}\n"


@pytest.mark.parametrize(
    "text, says",
    [
        ("input = \n", "not valid TOML"),
        ("input = 3\n[[layers]\nunits = 4\n", "not valid TOML"),
        ('input = 3\ninput = 4\n' + LAYERS, "not valid TOML"),
        ("input = 3\n" + LAYERS + "units = 5\n", "not valid TOML"),  # a duplicate key
        ("\x00", "not valid TOML"),
        ("", "input"),
        (LAYERS, "input"),
        ('input = 3\n', "layers"),
        ('input = "x"\n' + LAYERS, "input"),
        ('input = 0\n' + LAYERS, "input"),
        ('input = -3\n' + LAYERS, "input"),
        ('input = 3.0\n' + LAYERS, "input"),
        ('input = true\n' + LAYERS, "input"),
        ('input = [3]\n' + LAYERS, "input"),
        ('input = 3\n' + layer(units="-1"), "layer 1"),
        ('input = 3\n' + layer(units="0"), "layer 1"),
        ('input = 3\n' + layer(units="true"), "layer 1"),
        ('input = 3\n' + layer(units="false"), "layer 1"),
        ('input = 3\n' + layer(units="1e9"), "layer 1"),
        ('input = 3\n' + layer(units="4.0"), "layer 1"),
        ('input = 3\n' + layer(units="inf"), "layer 1"),
        ('input = 3\n' + layer(units="nan"), "layer 1"),
        ('input = 3\n' + layer(units=str(MAX_WIDTH + 1)), str(MAX_WIDTH)),
        ('input = 3\n' + layer(units="1000000000"), str(MAX_WIDTH)),
        ('input = 3\n' + layer(units='"abc"'), "layer 1"),
        ('input = 3\n' + layer(units="[4]"), "layer 1"),
        ('input = 3\n' + layer(units="{n = 4}"), "layer 1"),
        ('input = 3\n' + LAYERS + layer(units="1.5"), "layer 2"),
        ('input = 3\nlayers = 5\n', "layers"),
        ('input = 3\nlayers = "4:relu"\n', "layers"),
        ('input = 3\nlayers = []\n', "layers"),
        ('input = 3\nlayers = [1, 2]\n', "layers"),
        ('input = 3\n[layers]\nunits = 4\nactivation = "relu"\n', "layers"),
        ('input = 3\n' + layer(activation="5"), "activation"),
        ('input = 3\n' + layer(activation="true"), "activation"),
        ('input = 3\n' + layer(activation='["relu"]'), "activation"),
        ('input = 3\n' + layer(activation='""'), "activation"),
        ('input = 3\n' + layer(activation='"foo"'), "unknown activation"),
        ('input = 3\n' + layer(activation='"re\\u0000lu"'), "unknown activation"),
        ('input = 3\n' + layer(activation='"re\\nlu"'), "unknown activation"),
        ('input = 3\n' + layer(activation='"r\u00e9lu"'), "unknown activation"),
        ('input = 3\n' + layer(activation='"softmax"') + LAYERS, "softmax"),
        ('input = 3\n' + LAYERS + "dropout = 0.5\n", "units and activation"),
        ('input = 3\n[[layers]]\nunits = 4\n', "units and activation"),
        ('input = 3\n[[layers]]\nactivation = "relu"\n', "units and activation"),
        ('input = 3\n[[layers]]\nunits = 4\nActivation = "relu"\n', "units and activation"),
        ('input = 3\nfoo = 1\n' + LAYERS, "unknown key"),
        ('input = 3\nLayers = 1\n' + LAYERS, "unknown key"),
        ('input = 3\n' + LAYERS + '[extra]\nx = 1\n', "unknown key"),
        ('input = 3\nloss = 5\n' + LAYERS, "loss"),
        ('input = 3\nloss = ["mse"]\n' + LAYERS, "loss"),
        ('input = 3\nloss = "hinge"\n' + LAYERS, "unknown loss"),
        ('input = 3\nloss = "ms\\u0000e"\n' + LAYERS, "unknown loss"),
        ('name = "n\u00e9t"\ninput = 3\n' + LAYERS, "name"),
        ('name = "a\\u0000b"\ninput = 3\n' + LAYERS, "name"),
        ('name = "a\\nb"\ninput = 3\n' + LAYERS, "name"),
        ('name = "my net"\ninput = 3\n' + LAYERS, "name"),
        ('name = "1net"\ninput = 3\n' + LAYERS, "name"),
        ('name = "my-net"\ninput = 3\n' + LAYERS, "name"),
        ('name = "net.py"\ninput = 3\n' + LAYERS, "name"),
        ('name = ""\ninput = 3\n' + LAYERS, "name"),
        ('name = 5\ninput = 3\n' + LAYERS, "name"),
        ('name = "' + "a" * 40 + '"\ninput = 3\n' + LAYERS, "name"),
        ('input = 3\n' + "".join([layer(units="2")] * (MAX_LAYERS + 1)), str(MAX_LAYERS)),
    ],
    ids=repr,
)
def test_bad_toml(tmp_path, text, says):
    message = refused(spec.load, toml_file(tmp_path, text))
    assert says.lower() in message.lower(), message


CUSTOM = 'input = 3\n[[layers]]\nunits = 4\nactivation = "relu"\n'


@pytest.mark.parametrize(
    "table, says",
    [
        ('[activations.mish]\nexpr = "x*tanh(log(1 + exp(x))"\n', "mish"),  # unbalanced
        ('[activations.mish]\nexpr = "x**"\n', "mish"),
        ('[activations.mish]\nexpr = ""\n', "mish"),
        ('[activations.mish]\nexpr = "2"\n', "must use x"),
        ('[activations.mish]\nexpr = "y*x"\n', "mish"),  # y is not a variable of an activation
        ('[activations.mish]\nexpr = "foo(x)"\n', "mish"),
        ('[activations.mish]\nexpr = "__import__(\'os\').system(\'true\')"\n', "not allowed"),
        ('[activations.mish]\nexpr = "x.real"\n', "not allowed"),
        ('[activations.mish]\nexpr = "x if x > 0 else 0"\n', "mish"),
        ('[activations.mish]\nexpr = "x\\n+1"\n', "mish"),
        ('[activations.mish]\nexpr = "x + 1e400"\n', "mish"),
        ('[activations.mish]\nexpr = "x*9**9**9**9"\n', "mish"),
        ('[activations.mish]\nexpr = "' + "(" * 200 + "x" + ")" * 200 + '"\n', "mish"),
        ('[activations.mish]\nexpr = 5\n', "expr"),
        ('[activations.mish]\nformula = "x"\n', "expr"),
        ('[activations.mish]\nexpr = "x"\nderivative = "1"\n', "expr"),
        ('[activations]\nmish = "x"\n', "table"),
        ('activations = 5\n', "table"),
        ('[losses.my]\nexpr = "y**2"\n', "must use a"),
        ('[losses.my]\nexpr = "a +"\n', "my"),
        ('[losses.my]\nexpr = "x*a"\n', "my"),  # x is not a variable of a loss
        ('[losses.my]\nexpr = ["a"]\n', "expr"),
        ('losses = "a"\n', "table"),
        ('[activations.relu]\nexpr = "x"\n', "built in"),
        ('[activations.ReLU]\nexpr = "x"\n', "built in"),
        ('[activations.silu]\nexpr = "x"\n', "built in"),
        ('[activations.Leaky-ReLU]\nexpr = "x"\n', "built in"),
        ('[activations.softmax]\nexpr = "exp(x)"\n', "built in"),
        ('[activations.linear]\nexpr = "x"\n', "built in"),
        ('[losses.mse]\nexpr = "a"\n', "built in"),
        ('[losses.cross-entropy]\nexpr = "a"\n', "built in"),
        ('[losses.NLL]\nexpr = "a"\n', "built in"),
        ('[activations."m\u00edsh"]\nexpr = "x"\n', "not allowed"),
        ('[activations."a\\u0000b"]\nexpr = "x"\n', "not allowed"),
        ('[activations."a\\nb"]\nexpr = "x"\n', "not allowed"),
        ('[activations."a\\nb"]\nexpr = 5\n', "not allowed"),  # the name is judged before the entry
        ('[activations."my act"]\nexpr = "x"\n', "not allowed"),
        ('[activations."1act"]\nexpr = "x"\n', "not allowed"),
        ('[activations."a.b"]\nexpr = "x"\n', "not allowed"),
        ('[activations.""]\nexpr = "x"\n', "not allowed"),
        ('[activations.' + "a" * 33 + ']\nexpr = "x"\n', "not allowed"),
        ('[losses."l\u00f6ss"]\nexpr = "a"\n', "not allowed"),
        ('[activations.Mish]\nexpr = "x"\n[activations.mish]\nexpr = "x"\n', "twice"),
        ('[activations.my-act]\nexpr = "x"\n[activations.my_act]\nexpr = "x"\n', "twice"),
    ],
    ids=repr,
)
def test_bad_custom_definitions_in_toml(tmp_path, table, says):
    # a plain key must come before the [[layers]] tables, or TOML files it under them
    text = CUSTOM + table if table.startswith("[") else table + CUSTOM
    message = refused(spec.load, toml_file(tmp_path, text))
    assert says.lower() in message.lower(), message


@pytest.mark.parametrize(
    "activation_defs, loss_defs, says",
    [
        (("bad",), (), "NAME=EXPR"),
        (("=x",), (), "NAME=EXPR"),
        (("mine=",), (), "NAME=EXPR"),
        (("mine=  ",), (), "NAME=EXPR"),
        ((), ("bad",), "NAME=EXPR"),
        (("mine=x**",), (), "mine"),
        (("mine=2",), (), "must use x"),
        (("mine=foo(x)",), (), "mine"),
        (("mine=open('f')",), (), "mine"),
        (("mine=x.__class__",), (), "not allowed"),
        ((), ("mine=y",), "must use a"),
        ((), ("mine=log(",), "mine"),
        (("relu=x",), (), "built in"),
        (("Logistic=1/(1+exp(-x))",), (), "built in"),
        (("leaky-relu=x",), (), "built in"),
        ((), ("bce=a",), "built in"),
        ((), ("Cross-Entropy=a",), "built in"),
        (("m\u00edne=x",), (), "not allowed"),
        (("mi\x00ne=x",), (), "not allowed"),
        (("my act=x",), (), "not allowed"),
        (("9lives=x",), (), "not allowed"),
        (("a" * 33 + "=x",), (), "not allowed"),
        (("mine=x", "Mine=tanh(x)"), (), "twice"),
    ],
    ids=repr,
)
def test_bad_custom_definitions_from_options(activation_defs, loss_defs, says):
    message = refused(load_spec, "3-2:relu", None, activation_defs, loss_defs)
    assert says.lower() in message.lower(), message


# --- bad files -------------------------------------------------------------------------

def test_missing_toml_file(tmp_path):
    message = refused(spec.load, str(tmp_path / "absent.toml"))
    assert "absent.toml" in message


def test_directory_named_like_a_toml_file(tmp_path):
    (tmp_path / "dir.toml").mkdir()
    message = refused(spec.load, str(tmp_path / "dir.toml"))
    assert "dir.toml" in message


def test_toml_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes(b'name = "r\xe9seau"\ninput = 3\n' + LAYERS.encode())
    message = refused(spec.load, str(path))
    assert "UTF-8" in message


def test_toml_file_that_is_too_large(tmp_path):
    # a file over the limit is refused, never truncated and parsed
    padding = "# padding\n" * (spec.MAX_SPEC_FILE_BYTES // 10 + 1)
    message = refused(spec.load, toml_file(tmp_path, GOOD_TOML + padding))
    assert "larger" in message


def test_toml_error_names_the_file(tmp_path):
    message = refused(spec.load, toml_file(tmp_path, "input = \n", name="broken.toml"))
    assert "broken.toml" in message
