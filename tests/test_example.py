"""`derivgen example` (issue 5, part 1): a worked example with numbers for one sample.

The numbers are checked three ways: against the well-known published step-by-step example
(Matt Mazur, "A Step by Step Backpropagation Example"), against the generated NumPy module,
and against an independent float64 forward/backward written here."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from cases import CASES, CUSTOM
from derivgen import naming as nm
from derivgen import worked
from derivgen.derive import derive
from derivgen.spec import custom_definitions, parse_inline
from helpers import build, assert_clean_error, run

AGREEMENT = 1e-12

# ---------------------------------------------------------------- the published example

MAZUR_SPEC, MAZUR_LOSS = "2-2:sigmoid-2:sigmoid", "mse"
MAZUR_X, MAZUR_Y = [0.05, 0.10], [0.01, 0.99]
# W1[i][j]: from input j to hidden unit i (Mazur's w1..w4); W2: from hidden j to output i (w5..w8).
MAZUR_PARAMS = {"W1": [[0.15, 0.20], [0.25, 0.30]], "b1": [0.35, 0.35],
                "W2": [[0.40, 0.45], [0.50, 0.55]], "b2": [0.60, 0.60]}
# As printed in the article; each is checked to the precision it was printed with.
MAZUR = {
    "net_h1": "0.3775", "out_h1": "0.593269992", "out_h2": "0.596884378",
    "out_o1": "0.75136507", "out_o2": "0.772928465", "E_total": "0.298371109",
    "w5+": "0.35891648", "w6+": "0.408666186", "w7+": "0.511301270", "w8+": "0.561370121",
    "w1+": "0.149780716", "w2+": "0.19956143", "w3+": "0.24975114", "w4+": "0.29950229",
}


def to_printed_precision(value: float, printed: str) -> None:
    decimals = len(printed.split(".")[1])
    assert abs(value - float(printed)) <= 0.5 * 10 ** -decimals, (value, printed)


@pytest.fixture(scope="module")
def mazur():
    derivation = derive(parse_inline(MAZUR_SPEC, MAZUR_LOSS))
    return worked.compute(derivation, MAZUR_X, MAZUR_Y, MAZUR_PARAMS, 0.5)


def test_the_published_example_is_reproduced_to_its_printed_precision(mazur):
    hidden, output = mazur.layers
    ours = {
        "net_h1": hidden.z[0], "out_h1": hidden.a[0], "out_h2": hidden.a[1],
        "out_o1": output.a[0], "out_o2": output.a[1], "E_total": mazur.loss,
        "w5+": output.W_after[0][0], "w6+": output.W_after[0][1],
        "w7+": output.W_after[1][0], "w8+": output.W_after[1][1],
        "w1+": hidden.W_after[0][0], "w2+": hidden.W_after[0][1],
        "w3+": hidden.W_after[1][0], "w4+": hidden.W_after[1][1],
    }
    for name, printed in MAZUR.items():
        to_printed_precision(ours[name], printed)


def test_the_published_intermediate_steps(mazur):
    hidden, output = mazur.layers
    # dE/dw5 = 0.082167041 and dE/dw1 = 0.000438568, both printed in the article
    to_printed_precision(output.grad_W[0][0], "0.082167041")
    to_printed_precision(hidden.grad_W[0][0], "0.000438568")
    to_printed_precision(mazur.loss_terms[0], "0.274811083")  # E_o1
    to_printed_precision(mazur.loss_terms[1], "0.023560026")  # E_o2
    assert mazur.loss_after < mazur.loss


def test_the_published_numbers_appear_in_the_document(tmp_path):
    (tmp_path / "mazur.json").write_text(json.dumps(MAZUR_PARAMS))
    result = run("example", MAZUR_SPEC, "--loss", MAZUR_LOSS, "--params", str(tmp_path / "mazur.json"),
                 "--x", "0.05,0.10", "--y", "0.01,0.99", "--digits", "9")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for printed in ("0.3775", "0.593269992", "0.596884378", "0.75136507", "0.772928465", "0.298371109",
                    "0.35891648", "0.408666186", "0.51130127", "0.561370121", "0.149780716", "0.299502287"):
        assert printed in text, printed


# ---------------------------------------------------------------- agreement with the module

def _sample(module, rng):
    n0, nL = module.LAYER_SIZES[0], module.LAYER_SIZES[-1]
    x = rng.uniform(-1, 1, n0)
    y = rng.dirichlet(np.ones(nL)) if module.TARGETS_SUM_TO_ONE else rng.uniform(0.1, 0.9, nL)
    return x, y


def _largest_difference(example, module, params, x, y, rate):
    """The largest |ours - module's| (relative above 1) over every number both compute."""
    X, Y = x[None, :], y[None, :]
    _, cache = module.forward(params, X)
    grads = module.backward(params, cache, Y)
    after = {name: params[name] - rate * grads[name] for name in params}
    pairs = [(example.loss, module.loss(params, X, Y)), (example.loss_after, module.loss(after, X, Y))]
    for l, numbers in enumerate(example.layers, start=1):
        pairs += zip(numbers.a, cache[f"A{l}"][0])
        pairs += zip(np.ravel(numbers.grad_W), np.ravel(grads[f"W{l}"]))
        pairs += zip(numbers.grad_b, grads[f"b{l}"])
        pairs += zip(np.ravel(numbers.W_after), np.ravel(after[f"W{l}"]))
        pairs += zip(numbers.b_after, after[f"b{l}"])
    return max(abs(ours - theirs) / max(1.0, abs(theirs)) for ours, theirs in pairs)


def _derivation(spec, loss, activations=None, losses=None):
    return derive(parse_inline(spec, loss, custom_definitions("activation", activations or {}),
                               custom_definitions("loss", losses or {})))


AGREEMENT_CASES = {**{k: (s, l, {}, {}) for k, (s, l) in CASES.items()},
                   **{k: v for k, v in CUSTOM.items() if k != "softmax-kl"}}  # y log y: nan at y = 0


@pytest.mark.parametrize("case", sorted(AGREEMENT_CASES))
def test_agrees_with_the_generated_module(case, tmp_path):
    spec, loss, activations, losses = AGREEMENT_CASES[case]
    module = build(spec, loss, tmp_path, activations=custom_definitions("activation", activations),
                   losses=custom_definitions("loss", losses))
    derivation = _derivation(spec, loss, activations, losses)
    params = module.init_params(seed=1)
    ours = worked.random_params(derivation, seed=1)  # the same initialisation, bit for bit
    assert all(np.array_equal(ours[name], params[name]) for name in params)
    x, y = _sample(module, np.random.default_rng(7))
    example = worked.compute(derivation, x, y, params, 0.1)
    assert _largest_difference(example, module, params, x, y, 0.1) < AGREEMENT


# ---------------------------------------------------------------- an independent float64 computation

def _independent(sizes, hidden, output, params, x, y, rate):
    """Forward and backward by hand, for the architectures below: dict of every number."""
    derivative = {"tanh": lambda a: 1 - a ** 2, "relu": lambda a: (a > 0).astype(float),
                  "sigmoid": lambda a: a * (1 - a)}
    act = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0), "sigmoid": lambda z: 1 / (1 + np.exp(-z))}
    L = len(sizes) - 1

    def forward(p):
        zs, as_ = [], [x]
        for l in range(1, L + 1):
            z = p[f"W{l}"] @ as_[-1] + p[f"b{l}"]
            if l < L:
                a = act[hidden](z)
            elif output == "softmax":
                e = np.exp(z - z.max())
                a = e / e.sum()
            else:
                a = act[output](z)
            zs.append(z)
            as_.append(a)
        return zs, as_

    def loss(a):
        return float(-np.sum(y * np.log(a))) if output == "softmax" else float(0.5 * np.sum((a - y) ** 2))

    zs, as_ = forward(params)
    a_out = as_[-1]
    deltas = {L: a_out - y if output == "softmax" else (a_out - y) * derivative[output](a_out)}
    for l in range(L - 1, 0, -1):
        deltas[l] = (params[f"W{l + 1}"].T @ deltas[l + 1]) * derivative[hidden](as_[l])
    grads = {}
    for l in range(1, L + 1):
        grads[f"W{l}"] = np.outer(deltas[l], as_[l - 1])
        grads[f"b{l}"] = deltas[l]
    after = {name: params[name] - rate * grads[name] for name in params}
    return {"z": zs, "a": as_[1:], "delta": [deltas[l] for l in range(1, L + 1)], "grads": grads,
            "after": after, "loss": loss(a_out), "loss_after": loss(forward(after)[1][-1])}


INDEPENDENT = {
    "tanh-mse": ("3-4:tanh-2:tanh", "mse", "tanh", "tanh"),
    "relu-softmax-ce": ("3-5:relu-4:softmax", "ce", "relu", "softmax"),
    "deep-sigmoid-mse": ("2-3:sigmoid-3:sigmoid-2:sigmoid", "mse", "sigmoid", "sigmoid"),
}


@pytest.mark.parametrize("case", sorted(INDEPENDENT))
def test_agrees_with_an_independent_float64_computation(case):
    spec, loss, hidden, output = INDEPENDENT[case]
    derivation = _derivation(spec, loss)
    sizes = derivation.spec.sizes
    rng = np.random.default_rng(11)
    params = {}
    for l in range(1, len(sizes)):
        params[f"W{l}"] = rng.normal(0, 0.8, (sizes[l], sizes[l - 1]))
        params[f"b{l}"] = rng.normal(0, 0.3, sizes[l])
    x = rng.uniform(-1, 1, sizes[0])
    y = rng.dirichlet(np.ones(sizes[-1])) if output == "softmax" else rng.uniform(0.1, 0.9, sizes[-1])
    expected = _independent(sizes, hidden, output, params, x, y, 0.3)
    example = worked.compute(derivation, x, y, params, 0.3)
    pairs = [(example.loss, expected["loss"]), (example.loss_after, expected["loss_after"])]
    for l, numbers in enumerate(example.layers, start=1):
        pairs += zip(numbers.z, expected["z"][l - 1])
        pairs += zip(numbers.a, expected["a"][l - 1])
        pairs += zip(numbers.delta, expected["delta"][l - 1])
        pairs += zip(np.ravel(numbers.grad_W), np.ravel(expected["grads"][f"W{l}"]))
        pairs += zip(numbers.grad_b, expected["grads"][f"b{l}"])
        pairs += zip(np.ravel(numbers.W_after), np.ravel(expected["after"][f"W{l}"]))
        pairs += zip(numbers.b_after, expected["after"][f"b{l}"])
    assert max(abs(ours - theirs) / max(1.0, abs(theirs)) for ours, theirs in pairs) < AGREEMENT


def test_a_loss_outside_float_range_of_the_output_uses_the_stable_form():
    # sigmoid at z = 200 is 1 - 1e-87: at 30 digits a rounds to 1 and log(1 - a) fails
    derivation = _derivation("1-1:sigmoid", "bce")
    example = worked.compute(derivation, [1], [0.25], {"W1": [[200]], "b1": [0]}, 0.5)
    assert example.stable_loss
    assert example.loss == pytest.approx(0.75 * 200, rel=1e-12)


# ---------------------------------------------------------------- the command line



@pytest.fixture
def mazur_file(tmp_path):
    path = tmp_path / "mazur.json"
    path.write_text(json.dumps(MAZUR_PARAMS))
    return str(path)


def mazur_run(*extra: str, params: str | None = None):
    args = ["example", MAZUR_SPEC, "--loss", MAZUR_LOSS, "--x", "0.05,0.10", "--y", "0.01,0.99"]
    return run(*args, *(["--params", params] if params else []), *extra)


LABELS = [nm.eq_forward(1), nm.eq_forward(2), nm.EQ_LOSS, nm.EQ_OUTPUT_DELTA, nm.eq_delta(1),
          nm.eq_grad_w(1), nm.eq_grad_w(2), nm.eq_grad_b(1), nm.eq_grad_b(2)]


def test_latex_names_every_number_and_its_equation(mazur_file):
    result = mazur_run(params=mazur_file)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("%") and r"\begin{document}" in text and text.rstrip().endswith(r"\end{document}")
    for label in LABELS:
        assert rf"\tag{{{label}}}" in text, label
    assert r"z^{(1)}_{2} &= " in text and r"W^{(2)}_{12}" in text
    # the index convention, stated with the file's own entry
    assert "weight from unit $j$ of layer $l-1$ to unit $i$ of layer $l$" in text
    assert r"\texttt{W1[0][1]} is $W^{(1)}_{12}$" in text


def test_markdown_uses_only_dollar_maths(mazur_file):
    result = mazur_run("--format", "markdown", params=mazur_file)
    assert result.exit_code == 0, result.output
    text = result.stdout.split("\n", 1)[1]  # after the stamp line
    assert text.startswith("# A worked example")
    assert r"\begin{document}" not in text and r"\documentclass" not in text
    assert r"\(" not in text and not re.search(r"(?<!\\)\\\[", text)  # no \( or \[ delimiters
    assert text.count("$$") % 2 == 0
    for label in LABELS:
        assert rf"\tag{{{label}}}" in text, label
    outside = re.sub(r"\$\$.*?\$\$", "", text, flags=re.S)
    outside = re.sub(r"`[^`]*`", "", outside)
    assert outside.count("$") % 2 == 0


def test_digits_are_respected(mazur_file):
    three = mazur_run("--digits", "3", params=mazur_file).stdout
    assert "a^{(1)}_{1} &= " in three and "= 0.593" in three and "0.5933" not in three
    assert "0.593270" not in three and "0.593269992" not in three
    nine = mazur_run("--digits", "9", params=mazur_file).stdout
    assert "0.593269992" in nine
    default = mazur_run(params=mazur_file).stdout
    assert "0.59327 " in default or "0.59327\n" in default or "= 0.59327" in default
    assert "0.5932699" not in default


def test_output_is_deterministic_and_can_go_to_a_file(mazur_file, tmp_path):
    first = mazur_run(params=mazur_file).stdout
    assert mazur_run(params=mazur_file).stdout == first
    target = tmp_path / "sheet.tex"
    result = mazur_run("-o", str(target), params=mazur_file)
    assert result.exit_code == 0 and result.stdout == ""
    assert target.read_text() == first


def test_random_parameters_by_default_and_by_seed():
    default = mazur_run()
    assert default.exit_code == 0, default.output
    assert "seed 0" in default.stdout
    def body(text):  # without the command line, which records --seed when it was given, and the stamp
        return [line for line in text.splitlines()[1:] if "derivgen example" not in line]

    assert body(mazur_run("--seed", "0").stdout) == body(default.stdout)
    other = mazur_run("--seed", "5")
    assert other.exit_code == 0 and "seed 5" in other.stdout and body(other.stdout) != body(default.stdout)


def test_custom_definitions_on_the_command_line():
    result = run("example", "2-3:mish-2:sigmoid", "--activation", "mish=x*tanh(log(1 + exp(x)))",
                 "--loss", "bce", "--x", "0.3,-0.2", "--y", "0,1", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert r"\mathrm{mish}" in result.stdout and r"\tag{delta-1}" in result.stdout


def test_negative_inputs_are_numbers_not_options():
    result = run("example", MAZUR_SPEC, "--x", "-0.5,0.2", "--y", "0.1,0.9", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert "x_{1} &= -0.5" in result.stdout


BAD_PARAMS = {
    "wrong shape": ({**MAZUR_PARAMS, "W1": [[0.15, 0.20], [0.25, 0.30], [0.1, 0.1]]}, "W1 has 3 rows"),
    "short row": ({**MAZUR_PARAMS, "W2": [[0.40, 0.45], [0.50]]}, "W2[1] has 1 number"),
    "missing W2": ({k: v for k, v in MAZUR_PARAMS.items() if k != "W2"}, "missing W2"),
    "extra key": ({**MAZUR_PARAMS, "W3": [[1.0]]}, "unexpected key(s) W3"),
    "string": ({**MAZUR_PARAMS, "b1": [0.35, "0.35"]}, 'b1[1] is "0.35", not a number'),
    "boolean": ({**MAZUR_PARAMS, "b2": [0.6, True]}, "b2[1] is true, not a number"),
    "bias not a list": ({**MAZUR_PARAMS, "b2": 0.6}, "b2 must be a list of 2 numbers"),
    "not an object": ([1, 2], "must be a JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_bad_params_files(case, tmp_path):
    params, says = BAD_PARAMS[case]
    path = tmp_path / "params.json"
    path.write_text(json.dumps(params))
    assert_clean_error(mazur_run(params=str(path)), says)


@pytest.mark.parametrize("text, says", [
    ('{"W1": [[0.15, NaN], [0.25, 0.3]], "b1": [0.35, 0.35], "W2": [[0.4, 0.45], [0.5, 0.55]], '
     '"b2": [0.6, 0.6]}', "NaN"),
    ('{"W1": [[0.15, 0.2], [0.25, 0.3]], "b1": [0.35, Infinity], "W2": [[0.4, 0.45], [0.5, 0.55]], '
     '"b2": [0.6, 0.6]}', "Infinity"),
    ('{"W1": [[0.15, 0.2], [0.25, 0.3]], "b1": [0.35, 0.35], "W2": [[0.4, 0.45], [0.5, 1e400]], '
     '"b2": [0.6, 0.6]}', "not a finite number"),
    ('{"W1": ', "not valid JSON"),
])
def test_non_finite_and_broken_json(text, says, tmp_path):
    path = tmp_path / "params.json"
    path.write_text(text)
    assert_clean_error(mazur_run(params=str(path)), says)


def test_a_missing_params_file(tmp_path):
    assert_clean_error(mazur_run(params=str(tmp_path / "absent.json")), "absent.json")


@pytest.mark.parametrize("option, value, says", [
    ("--x", "0.05", "--x has 1 number; the network needs 2"),
    ("--x", "0.05,0.1,0.2", "--x has 3 numbers"),
    ("--x", "a,b", "'a' is not a number"),
    ("--x", "0.1,nan", "'nan' is not a number"),
    ("--x", "0.1,1e999", "not a finite number"),
    ("--y", "0.5", "--y has 1 number"),
    ("--lr", "-0.5", "--lr must be a positive number"),
    ("--lr", "fast", "'fast' is not a number"),
    ("--digits", "0", "--digits must be a whole number from 1 to 15"),
    ("--digits", "many", "--digits must be a whole number"),
    ("--seed", "-1", "--seed must be a whole number"),
])
def test_bad_options(option, value, says):
    args = {"--x": "0.05,0.10", "--y": "0.01,0.99", option: value}
    result = run("example", MAZUR_SPEC, "--loss", MAZUR_LOSS, *[w for pair in args.items() for w in pair])
    assert_clean_error(result, says)


def test_seed_and_params_together_are_refused(mazur_file):
    assert_clean_error(mazur_run("--seed", "3", params=mazur_file), "--seed")


def test_a_network_too_big_for_a_worked_example():
    line = assert_clean_error(run("example", "784-128:relu-10:softmax", "--x", "0", "--y", "1"))
    assert "101,770 parameters" in line and "10,000" in line


def test_a_network_with_too_many_units_for_a_worked_example():
    line = assert_clean_error(run("example", "1-1500:gelu-1:identity", "--x", "0", "--y", "1"))
    assert "1,501 units" in line and "1,000" in line


def test_softmax_cross_entropy_targets_must_sum_to_one():
    assert_clean_error(run("example", "3-3:softmax", "--loss", "ce", "--x", "0.1,0.2,0.3", "--y", "0.5,0.2,0.2"),
                       "sum to 1")
    assert run("example", "3-3:softmax", "--loss", "ce", "--x", "0.1,0.2,0.3", "--y", "0.5,0.3,0.2").exit_code == 0


def test_bad_input_through_the_real_entry_point_has_no_traceback():
    import sys
    process = subprocess.run([sys.executable, "-m", "derivgen.cli", "example", MAZUR_SPEC, "--x", "a,b", "--y", "0,1"],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 2 and process.stdout == ""
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("derivgen: error: --x"), process.stderr


# ---------------------------------------------------------------- pdflatex

PDFLATEX = shutil.which("pdflatex")


def _compile(text: str, folder) -> list[float]:
    """Compile with pdflatex; the widths (pt) of overfull lines."""
    (folder / "sheet.tex").write_text(text)
    result = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "sheet.tex"],
                            cwd=folder, capture_output=True, text=True, timeout=180)
    log = (folder / "sheet.log").read_text(errors="replace")
    assert result.returncode == 0, "\n".join(line for line in log.splitlines() if line.startswith("!"))
    assert (folder / "sheet.pdf").stat().st_size > 0
    return [float(points) for points in re.findall(r"Overfull \\hbox \((\d+\.\d+)pt too wide", log)]


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (Debian: texlive-latex-base, "
                    "texlive-latex-recommended); CI installs it")
@pytest.mark.parametrize("args", [
    ("--digits", "9"),
    ("--digits", "15", "--lr", "2.5"),
], ids=["mazur-9-digits", "mazur-15-digits"])
def test_the_mazur_sheet_compiles(args, mazur_file, tmp_path):
    result = mazur_run(*args, params=mazur_file)
    assert result.exit_code == 0, result.output
    assert all(width < 5 for width in _compile(result.stdout, tmp_path))


@pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (Debian: texlive-latex-base, "
                    "texlive-latex-recommended); CI installs it")
@pytest.mark.parametrize("spec, loss, x, y", [
    ("3-4:relu-3:softmax", "mse", "-0.4,-0.1,0.2", "0.2,0.5,0.8"),
    ("4-6:leaky_relu-5:gelu-3:softmax", "ce", "1e-5,-2,0.5,3", "0,0,1"),
    ("12-3:elu-2:identity", "mse", ",".join(["0.25"] * 12), "-1.5,2"),
])
def test_other_sheets_compile(spec, loss, x, y, tmp_path):
    for digits in ("6", "12"):
        result = run("example", spec, "--loss", loss, "--x", x, "--y", y, "--digits", digits, "--seed", "4")
        assert result.exit_code == 0, result.output
        assert all(width < 5 for width in _compile(result.stdout, tmp_path))


def test_weight_decay_is_refused_cleanly(tmp_path):
    spec = tmp_path / "decay.toml"
    spec.write_text('input = 2\nl2 = 0.1\nloss = "mse"\n[[layers]]\nunits = 2\nactivation = "sigmoid"\n')
    assert_clean_error(run("example", str(spec), "--x", "1,2", "--y", "0.5,0.5"), "L2 weight decay")
