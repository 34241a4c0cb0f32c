"""Fuzzing (issue 7): hostile and malformed input through the parsers and the command line.

Inputs are grammar-aware inline specs (widths including 0, negatives, huge and Unicode digits;
real, aliased and garbage activation names; odd separators), structure-aware TOML documents
(wrong types, missing and extra keys, Unicode, NUL, huge numbers, infinities, nested tables,
arrays where tables belong) and their bytes mutated, spec file names, custom names, and
formulas (grammar-generated, then mutated token by token, nested deeply, raised to huge
powers). Every input must give a result or one clean error:

* parsers: a value, or DerivgenError / FormulaError with a one-line message;
* the command line (click's CliRunner, in-process): exit 0 with non-empty output (`generate`'s
  compiles as Python; it is never run), or exit 2 with exactly one non-empty stderr line
  `derivgen: error: ...`; never a traceback;
* never slow: a per-example deadline of a few seconds;
* never a side effect: the tests run in a scratch working folder that holds only a canary
  file, and after every example it holds exactly the canary, unchanged.

Hypothesis drives every test. The bulk tests draw a seed and build the input with a fast
hand-written grammar (`Grammar`), because Hypothesis' own recursive strategies cost ~10-20 ms
an example; the smaller tests use Hypothesis strategies directly, which shrink well. Examples
are derandomized (the same inputs every run, so CI is reproducible); the sum of max_examples is
the number of inputs tried per run (FUZZ_INPUTS, at least 10,000). For a longer hunt by hand:
DERIVGEN_FUZZ_SCALE=10 multiplies every count, DERIVGEN_FUZZ_RANDOM=1 draws new inputs.
A crasher found here is kept as an explicit test in test_crashers.py.
"""

import math
import os
import random
import re
import time
import traceback
from datetime import date, datetime, time as clock, timedelta, timezone
from pathlib import Path

import pytest
import sympy
from click.testing import CliRunner
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from derivgen import catalog, spec as spec_module
from derivgen.cli import main
from derivgen.errors import DerivgenError
from derivgen.formula import FUNCTIONS, MAX_LENGTH, FormulaError
from derivgen.spec import MAX_LAYERS, MAX_WIDTH

SCALE = float(os.environ.get("DERIVGEN_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("DERIVGEN_FUZZ_RANDOM", "") not in ("", "0")
SLOW = 5.0  # seconds: no single input may take longer (first-use SymPy warm-up included)

FUZZ_INPUTS = 0  # the sum of max_examples, counted as the tests are defined


def fuzz(examples: int):
    """Settings for one fuzz test: reproducible, no example database, a per-example deadline."""
    global FUZZ_INPUTS
    examples = max(1, int(examples * SCALE))
    FUZZ_INPUTS += examples
    return settings(max_examples=examples, derandomize=not RANDOM, database=None,
                    deadline=timedelta(seconds=SLOW), suppress_health_check=list(HealthCheck))


SEEDS = st.integers(0, 2 ** 64 - 1)


# ---------------------------------------------------------------- the sandbox


class Sandbox:
    """The working folder (with the canary) and `specs`, beside it, where a test writes the
    spec files it feeds to the command line."""

    def __init__(self, work: Path, specs: Path):
        self.work, self.specs, self.canary = work, specs, work / "CANARY"
        self.canary.write_text("do not touch\n")
        self.stamp = self.canary.stat().st_mtime_ns

    def check(self, spec_files=()):
        """Nothing written: the working folder holds only the untouched canary, and the
        spec folder only the files the test wrote."""
        assert Path.cwd() == self.work
        assert os.listdir(self.work) == ["CANARY"], os.listdir(self.work)
        assert self.canary.stat().st_mtime_ns == self.stamp
        assert self.canary.read_text() == "do not touch\n"
        assert sorted(os.listdir(self.specs)) == sorted(spec_files), os.listdir(self.specs)

    def write_spec(self, name: str, data: bytes) -> Path:
        for old in os.listdir(self.specs):
            os.unlink(self.specs / old)
        path = self.specs / name
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "work").mkdir()
    (root / "specs").mkdir()
    box = Sandbox(root / "work", root / "specs")
    previous = os.getcwd()
    os.chdir(box.work)
    try:
        yield box
    finally:
        os.chdir(previous)


# ---------------------------------------------------------------- checking one input

RUNNER = CliRunner()
ERROR_PREFIX = "derivgen: error: "


def one_line(message: str) -> None:
    assert message.strip(), "an empty error message"
    assert "\n" not in message and "\r" not in message, repr(message)
    assert "Traceback" not in message


def run_cli(args: list[str]) -> str | None:
    """Run the command line in-process and check the contract. Returns stdout on success,
    None after a clean error."""
    note(f"args: {args!r}")
    start = time.perf_counter()
    result = RUNNER.invoke(main, args)
    elapsed = time.perf_counter() - start
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail(f"{args!r} raised:\n" + "".join(traceback.format_exception(*result.exc_info)))
    for text in (result.stdout, result.stderr):
        assert "Traceback" not in text, (args, text)
    assert elapsed < SLOW, (args, elapsed)
    if result.exit_code == 0:
        assert result.stdout.strip(), args
        assert result.stderr == "", (args, result.stderr)
        return result.stdout
    assert result.exit_code == 2, (args, result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), (args, result.stderr)
    assert lines[0][len(ERROR_PREFIX):].strip(), (args, result.stderr)
    assert result.stdout == "", (args, result.stdout)
    return None


def generate(args: list[str]) -> str | None:
    out = run_cli(["generate", *args])
    if out is not None:
        compile(out, "generated.py", "exec")  # compiled, never run
        assert "def loss_and_grad(" in out
    return out


def derive_markdown(args: list[str]) -> str | None:
    out = run_cli(["derive", "--format", "markdown", *args])
    if out is not None:
        assert "δ" in out or "delta" in out, out[:300]
    return out


def parses(function, *args):
    """Call a parser: its value, or None after checking a clean one-line error."""
    note(f"input: {args[:2]!r}")
    start = time.perf_counter()
    try:
        value = function(*args)
    except (DerivgenError, FormulaError) as err:
        one_line(str(err))
        value = None
    assert time.perf_counter() - start < SLOW, args
    return value


# ---------------------------------------------------------------- vocabulary

BUILTIN_ACTIVATIONS = list(catalog.ACTIVATIONS) + [a for _, al in catalog.ACTIVATIONS.values() for a in al]
BUILTIN_LOSSES = list(catalog.LOSSES) + [a for _, al in catalog.LOSSES.values() for a in al]
# Custom definitions the command-line tests pass: derived once, then cached.
CUSTOM_ACTIVATIONS = {"mish": "x*tanh(softplus(x))", "kink": "max(0, x) + 0.1*min(0, x)"}
CUSTOM_LOSSES = {"quartic": "(a - y)**4/4", "logcosh": "log(cosh(a - y))"}
CUSTOM_OPTIONS = [f"--activation={n}={f}" for n, f in CUSTOM_ACTIVATIONS.items()] + \
                 [f"--loss-def={n}={f}" for n, f in CUSTOM_LOSSES.items()]

ODD_TEXT = ["", " ", "\t", "\n", "\r\n", "\x00", "\x7f", "\u200b", "\u2028", "\ufeff", "\u202e",
            "'", '"', '"""', "\\", "\\N", "{", "}", "$", "%", "#", "`", "${x}", "{{ x }}", "é", "ß",
            "ǅ", "\u212a", "İ", "ﬁ", "Σ", "e\u0301", "日本", "🙂", "\U0001d465", "\udcff", "None", "nan", "inf"]


def variants(word: str) -> list[str]:
    return [word, word.upper(), word.title(), word.replace("_", "-"), word.replace("_", " "),
            f" {word} ", f"{word}\n", word + "\x00", word.replace("e", "\u0435")]  # a Cyrillic e


ACTIVATION_VARIANTS = [v for w in BUILTIN_ACTIVATIONS + list(CUSTOM_ACTIVATIONS) for v in variants(w)]
LOSS_VARIANTS = [v for w in BUILTIN_LOSSES + list(CUSTOM_LOSSES) for v in variants(w)]
UNICODE_DIGITS = "³٣３߃𝟑Ⅲ½০๓᠓"
ODD_WIDTHS = ["0", "00", "007", "-1", "+3", "3.0", "1e3", "0x10", "1_000", " 4 ", "", "\t5", "4\n",
              str(MAX_WIDTH), str(MAX_WIDTH + 1), "9" * 30, "9" * 5000, "1" + "0" * 18, *UNICODE_DIGITS]
LAYER_SEPARATORS = ["--", "\u2014", "\u2212", "\u2013", ",", ";", " ", "- ", " -", ":", "\n", "\t", "->", "=", ""]
UNIT_SEPARATORS = ["::", "=", " ", "", ";", "\uff1a", ":\n", " : ", "-"]
SPEC_ALPHABET = "0123456789-:_abcdefghijklmnopqrstuvwxyz \x00\n\t\u2212\uff1a" + UNICODE_DIGITS
# --l2 values click reads as floats (one it cannot read is click's usage error, not ours)
L2_VALUES = ["0", "0.01", "1e-4", "1000", "1001", "-1", "nan", "inf", "-inf", "-0.0", "1e309", "1e-320", " 2 "]

NUMBERS = ["0", "1", "2", "0.5", "1e3", "1e-3", ".5", "5.", "1_000", "0x1f", "0o7", "0b101", "1e12", "1e13",
           "1e-12", "1e-13", "1e400", "1e-400", "123456789012345678901", "3j", "0.1", "00", "1__0", "0_1",
           "1e", "0.000000000001", "999999999999", "1000000000000.5", "2.5", "7", "0.01", "10"]
WRONG_NAMES = ["z", "X", "xx", "__import__", "os", "nan", "inf", "None", "True", "exp", "pi_", "builtins",
               "self", "lambda", "sum"]
UNARY_FUNCTIONS = [f for f in FUNCTIONS if f not in ("max", "min", "where")]
COMPARISONS = ["<", "<=", ">", ">=", "==", "!=", "<>", "=>"]
BIG_EXPONENTS = ["64", "65", "-64", "1000", "10**10", "9**9**9", "0.5", "1/3", "0.333", "1e-300", "(1/1001)",
                 "2**64", "x", "-x", "0", "-1", "1.5"]
TOKEN = re.compile(r"\d+\.?\d*(?:[eE][-+]?\d+)?|\w+|\*\*|[<>=!]=|\S")
TOKEN_POOL = ["x", "a", "y", "(", ")", ",", "+", "-", "*", "/", "**", "<", ">=", "exp", "log", "max", "where",
              "1", "0", "2.5", "1e300", "9" * 30, "'", '"', "[", "]", "{", "}", ".", "__class__", "lambda", ":",
              ";", "#", "\\", "@", "%", "//", "==", "if", "else", "and", "not", "\n", "\t", "\x00", "é", "\uff58",
              "\U0001d465", "**99", "**-1", "__import__", "(x)", "os", "import", "=", ":=", "..."]

NETWORK_NAMES = ["mnist_mlp", "network", "Net1", 'x"""; import os', "a b", "", "K", "\u212a", "İ", "x" * 33,
                 "'''", "\\", "a\x00b", "a\nb", "n" * 32]
CUSTOM_NAMES = ["mine", "mish", "relu", "ce", "Mine", "my-act", "my act", "m" * 33, "1x", "", 'x"""', "a\nb",
                "é", "exec", "os"]
FIXED_FORMULAS = [*CUSTOM_ACTIVATIONS.values(), "x", "x +", "7", "__import__('os')", "a - y", "(a - y)**2"]
TOP_KEYS = ["name", "input", "loss", "l2", "layers", "activations", "losses"]
OTHER_KEYS = ["units", "activation", "expr", "Name", "input ", "layer", "", "\x00", "é", "a.b"]


class Grammar:
    """Fast, grammar-aware generators on one random.Random (seeded by Hypothesis)."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)

    def pick(self, items):
        return items[self.r.randrange(len(items))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    # ---- text
    def noise(self, size: int = 10) -> str:
        kind = self.r.randrange(4)
        if kind == 0:
            return self.pick(ODD_TEXT)
        if kind == 1:  # printable ASCII
            return "".join(chr(self.r.randrange(32, 127)) for _ in range(self.r.randrange(size + 1)))
        if kind == 2:  # anything but surrogates
            chars = (self.r.choice([self.r.randrange(0, 0x250), self.r.randrange(0x250, 0xD800),
                                    self.r.randrange(0xE000, 0x110000)]) for _ in range(self.r.randrange(size + 1)))
            return "".join(map(chr, chars))
        return self.pick(SPEC_ALPHABET) * self.r.randrange(1, 4)

    def mutate_chars(self, text: str, alphabet: str) -> str:
        """Character edits: insert, delete, replace, duplicate a slice."""
        for _ in range(self.r.randrange(1, 5)):
            where = self.r.randrange(len(text) + 1)
            op = self.r.randrange(4)
            if op == 0:
                text = text[:where] + self.pick(alphabet) + text[where:]
            elif op == 1:
                text = text[:where] + text[where + 1:]
            elif op == 2:
                text = text[:where] + self.pick(alphabet) + text[where + 1:]
            else:
                end = self.r.randrange(where, len(text) + 1)
                text = text[:end] + text[where:end] + text[end:]
        return text

    # ---- names
    def activation_word(self) -> str:
        kind = self.r.randrange(10)
        if kind < 6:
            return self.pick(BUILTIN_ACTIVATIONS + list(CUSTOM_ACTIVATIONS))
        return self.pick(ACTIVATION_VARIANTS) if kind < 8 else self.noise()

    def loss_word(self) -> str:
        kind = self.r.randrange(10)
        if kind < 6:
            return self.pick(BUILTIN_LOSSES + list(CUSTOM_LOSSES))
        return self.pick(LOSS_VARIANTS) if kind < 8 else self.noise()

    # ---- inline specs
    def width(self) -> str:
        kind = self.r.randrange(10)
        if kind < 6:
            return str(self.r.randint(1, 12))
        if kind < 8:
            return self.pick(ODD_WIDTHS)
        if kind < 9:
            return str(self.r.randint(0, 2 * MAX_WIDTH))
        return "".join(self.pick("0123456789" + UNICODE_DIGITS + " -+.e") for _ in range(self.r.randrange(6)))

    def inline_spec(self) -> str:
        text = self.width()
        for _ in range(self.r.choice([0, 1, 1, 2, 2, 3, 4, 6])):
            dash = "-" if self.chance(0.85) else self.pick(LAYER_SEPARATORS)
            colon = ":" if self.chance(0.85) else self.pick(UNIT_SEPARATORS)
            text += f"{dash}{self.width()}{colon}{self.activation_word()}"
        return self.mutate_chars(text, SPEC_ALPHABET) if self.chance(0.3) else text

    def loss_option(self):
        return None if self.chance(0.5) else self.loss_word()

    def l2_option(self):
        return None if self.chance(0.7) else self.pick(L2_VALUES)

    # ---- formulas
    def formula(self, variables: list[str], depth: int = 4, long_numbers: bool = True) -> str:
        if depth <= 0 or self.chance(0.25):
            kind = self.r.randrange(10)
            if kind < 5:
                return self.pick(variables)
            if kind < 8:
                long = long_numbers and self.chance(0.3)
                return repr(self.r.uniform(-1e6, 1e6)) if long else self.pick(NUMBERS)
            return self.pick(["pi", "e"]) if kind < 9 else self.pick(WRONG_NAMES)
        sub = lambda: self.formula(variables, depth - 1, long_numbers)  # noqa: E731
        kind = self.r.randrange(10)
        if kind < 4:
            text = f"{sub()} {self.pick(['+', '-', '*', '/', '**'])} {sub()}"
            return f"({text})" if self.chance(0.6) else text
        if kind == 4:
            return f"{self.pick(['-', '+', '--'])}{sub()}"
        if kind < 7:
            return f"{self.pick(UNARY_FUNCTIONS)}({sub()})"
        if kind == 7:
            return f"{self.pick(['max', 'min'])}({sub()}, {sub()})"
        if kind == 8:
            return f"where({sub()} {self.pick(COMPARISONS)} {sub()}, {sub()}, {sub()})"
        if self.chance(0.5):
            return f"{self.pick(FUNCTIONS)}({', '.join(sub() for _ in range(self.r.randrange(5)))})"
        return f"({sub()})**{self.pick(BIG_EXPONENTS)}"

    def formula_mutant(self, variables: list[str]) -> str:
        """A formula from the grammar, then token edits, deep nesting or huge exponents."""
        text = self.formula(variables, self.r.randrange(1, 5))
        tokens = TOKEN.findall(text) or [text]
        for _ in range(self.r.choice([0, 0, 1, 1, 2, 3, 4])):
            op = self.r.randrange(8)
            where = self.r.randrange(len(tokens) + 1)
            if op == 0:
                tokens.insert(where, self.pick(TOKEN_POOL))
            elif op == 1 and tokens:
                del tokens[min(where, len(tokens) - 1)]
            elif op == 2 and tokens:
                tokens[min(where, len(tokens) - 1)] = self.pick(TOKEN_POOL)
            elif op == 3 and len(tokens) > 1:
                i = min(where, len(tokens) - 2)
                tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
            elif op == 4:
                n = self.pick([2, 10, 39, 40, 41, 100, 250])
                tokens = ["("] * n + tokens + [")"] * n
            elif op == 5:
                n = self.pick([1, 3, 15, 30, 60])
                tokens = [f"{self.pick(FUNCTIONS)}("] * n + tokens + [")"] * n
            elif op == 6:
                tokens += [self.pick(["+x", "*x", "**x", "**2", "-", "+exp(x)", "*a", "+y"])] * self.r.randint(1, 200)
            else:
                tokens = ["("] + tokens + [")", "**", self.pick(BIG_EXPONENTS)]
        return " ".join(tokens) if self.chance(0.5) else "".join(tokens)

    # ---- TOML
    def scalar(self):
        kind = self.r.randrange(12)
        if kind == 0:
            return self.chance(0.5)
        if kind == 1:
            return self.r.randint(-5, 60)
        if kind == 2:
            return self.r.randint(-2 ** 70, 2 ** 70)
        if kind == 3:
            return self.pick([0, -1, MAX_WIDTH, MAX_WIDTH + 1, 2 ** 63 - 1, -2 ** 63, 10 ** 30, 10 ** 5000])
        if kind == 4:
            return self.pick([math.inf, -math.inf, math.nan, 0.0, -0.0, 1e308, 5e-324, 2.0, 1e3, 2.5])
        if kind == 5:
            return self.r.uniform(-1e9, 1e9)
        if kind in (6, 7):
            return self.noise()
        if kind == 8:
            return datetime(self.r.randint(1, 9999), self.r.randint(1, 12), self.r.randint(1, 28),
                            self.r.randrange(24), tzinfo=self.pick([None, timezone.utc]))
        if kind == 9:
            return date(self.r.randint(1, 9999), self.r.randint(1, 12), self.r.randint(1, 28))
        if kind == 10:
            return clock(self.r.randrange(24), self.r.randrange(60), self.r.randrange(60))
        return self.pick(FIXED_FORMULAS)

    def value(self, depth: int = 2):
        kind = self.r.randrange(6)
        if depth <= 0 or kind < 4:
            return self.scalar()
        if kind == 4:
            return [self.value(depth - 1) for _ in range(self.r.randrange(4))]
        return {self.key(): self.value(depth - 1) for _ in range(self.r.randrange(4))}

    def key(self) -> str:
        kind = self.r.randrange(3)
        return self.pick(TOP_KEYS) if kind == 0 else self.pick(OTHER_KEYS) if kind == 1 else self.noise(6)

    def definitions(self, formulas) -> dict:
        return {self.pick(CUSTOM_NAMES) if self.chance(0.8) else self.noise(6): {"expr": formulas()}
                for _ in range(self.r.randrange(3))}

    def document(self, formulas=None, layer_counts=(0, MAX_LAYERS, MAX_LAYERS + 1)) -> dict:
        """A document close to valid, then up to four structural mutations."""
        formulas = formulas or (lambda: self.pick(FIXED_FORMULAS))
        doc = {"input": self.r.randint(1, 12),
               "layers": [{"units": self.r.randint(1, 12), "activation": self.activation_word()}
                          for _ in range(self.r.randint(1, 5))]}
        if self.chance(0.4):
            doc["name"] = self.pick(NETWORK_NAMES) if self.chance(0.7) else self.noise(8)
        if self.chance(0.4):
            doc["loss"] = self.loss_word()
        if self.chance(0.2):
            doc["l2"] = self.pick([0, 0.01, 1e3, 1e4, -1, math.nan, math.inf])
        for key in ("activations", "losses"):
            if self.chance(0.3):
                doc[key] = self.definitions(formulas)
        for _ in range(self.r.choice([0, 0, 1, 1, 2, 4])):
            op = self.r.randrange(7)
            layers = doc.get("layers")
            if op == 0:
                doc.pop(self.pick(TOP_KEYS), None)
            elif op == 1:
                doc[self.key()] = self.value()
            elif op in (2, 3) and isinstance(layers, list) and layers and isinstance(layers[-1], dict):
                layer = layers[-1]
                if op == 2:
                    layer[self.key()] = self.value()
                else:
                    layer.pop(self.pick(["units", "activation"]), None)
            elif op == 4 and isinstance(doc.get("activations"), dict):
                doc["activations"][self.key()] = self.value()
            elif op == 5:
                doc["layers"] = [{"units": 2, "activation": "tanh"} for _ in range(self.pick(layer_counts))]
            elif op == 6:
                doc[self.pick(TOP_KEYS)] = self.value(depth=3)
        return doc

    def mutate_bytes(self, data: bytes) -> bytes:
        data = bytearray(data)
        for _ in range(self.r.randrange(1, 7)):
            where = self.r.randrange(len(data) + 1)
            op = self.r.randrange(5)
            byte = self.pick([0, 0xFF, 0xC3, 0xE2, 0x80, 0x0A, 0x0D, 0x22, 0x27, 0x5B, 0x5D, 0x3D, 0x23, 0x5C,
                              0x7F, 0x09]) if self.chance(0.6) else self.r.randrange(256)
            if op == 0:
                data[where:where] = bytes([byte])
            elif op == 1:
                del data[where:where + 1]
            elif op == 2 and where < len(data):
                data[where] ^= 1 << self.r.randrange(8)
            elif op == 3:
                del data[where:]
            else:
                data[0:0] = b"\xef\xbb\xbf"
        return bytes(data)


def toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F or 0xD800 <= ord(char) < 0xE000:  # surrogates: bad TOML
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10 ** 4000 else "9" * 5000  # str() refuses > 4300 digits
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (datetime, date, clock)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_text(doc: dict, tables: bool) -> str:
    """The document as TOML: inline values, or the usual [[layers]] / [activations.x] tables."""
    lines, later = [], []
    for key, value in doc.items():
        if tables and key == "layers" and isinstance(value, list) and value and \
                all(isinstance(v, dict) for v in value):
            for layer in value:
                later += ["[[layers]]"] + [f"{toml_string(k)} = {toml_value(v)}" for k, v in layer.items()]
        elif tables and key in ("activations", "losses") and isinstance(value, dict) and \
                all(isinstance(v, dict) for v in value.values()):
            for name, entry in value.items():
                later += [f"[{key}.{toml_string(name)}]"] + [f"{toml_string(k)} = {toml_value(v)}"
                                                             for k, v in entry.items()]
        else:
            lines.append(f"{toml_string(key)} = {toml_value(value)}")
    return "\n".join(lines + later) + "\n"


def option_args(loss, l2) -> list[str]:
    return ([] if loss is None else ["--loss", loss]) + ([] if l2 is None else ["--l2", l2])


def float_or_none(text):
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


_CUSTOM = {}


def custom() -> dict:
    if not _CUSTOM:
        _CUSTOM["activations"] = spec_module.custom_definitions("activation", CUSTOM_ACTIVATIONS)
        _CUSTOM["losses"] = spec_module.custom_definitions("loss", CUSTOM_LOSSES)
    return _CUSTOM


# ---------------------------------------------------------------- inline specs


@fuzz(4000)
@given(SEEDS)
def test_inline_specs_parse_or_fail_cleanly(sandbox, seed):
    g = Grammar(seed)
    text, loss, l2 = g.inline_spec(), g.loss_option(), g.l2_option()
    network = parses(spec_module.parse_inline, text, loss, custom()["activations"], custom()["losses"],
                     float_or_none(l2))
    if network is not None:
        assert 1 <= network.depth <= MAX_LAYERS
        assert all(1 <= n <= MAX_WIDTH for n in network.sizes)
        assert all(not layer.activation.is_softmax for layer in network.layers[:-1])
    sandbox.check()


@fuzz(1500)
@given(SEEDS)
def test_inline_specs_generate_or_fail_cleanly(sandbox, seed):
    g = Grammar(seed)
    text, loss, l2 = g.inline_spec(), g.loss_option(), g.l2_option()
    generate([*option_args(loss, l2), *CUSTOM_OPTIONS, "--", text])
    sandbox.check()


# Hypothesis' own strategies for the smaller tests: slower to draw, but they shrink well.
WIDTHS = st.one_of(st.integers(1, 9).map(str), st.sampled_from(ODD_WIDTHS))
ACTIVATION_WORDS = st.one_of(st.sampled_from(BUILTIN_ACTIVATIONS + list(CUSTOM_ACTIVATIONS)),
                             st.sampled_from(ACTIVATION_VARIANTS), st.text(max_size=8), st.sampled_from(ODD_TEXT))
INLINE_SPECS = st.tuples(WIDTHS, st.lists(st.tuples(st.sampled_from(["-", "-", "-"] + LAYER_SEPARATORS), WIDTHS,
                                                    st.sampled_from([":", ":", ":"] + UNIT_SEPARATORS),
                                                    ACTIVATION_WORDS), max_size=4)).map(
    lambda t: t[0] + "".join("".join(layer) for layer in t[1]))


@fuzz(200)
@given(INLINE_SPECS, st.one_of(st.none(), st.sampled_from(BUILTIN_LOSSES + LOSS_VARIANTS)))
def test_inline_specs_derive_or_fail_cleanly(sandbox, text, loss):
    derive_markdown([*option_args(loss, None), *CUSTOM_OPTIONS, "--", text])
    sandbox.check()


# ---------------------------------------------------------------- custom names on the command line

NAMES = st.one_of(st.sampled_from(["mine", "f", "a1", "x_2", "Mine", " mine ", "my-act", "m" * 32, "m" * 33,
                                   "relu", "ce", "softmax", "_x", "1x", "x.y", "os", "exec", "eval", "open",
                                   "print", "import", "np", "math", "self", "A1", "W1", "grads"]),
                  st.sampled_from(ODD_TEXT), st.text(max_size=8))


@fuzz(500)
@given(NAMES, st.sampled_from(["activation", "loss-def"]), st.sampled_from(["x", "x*sigmoid(x)", "x +", "a"]))
def test_custom_names_on_the_command_line(sandbox, name, kind, formula):
    if kind == "activation":
        args = ["--activation", f"{name}={formula}", "--", f"2-3:{name}-1:identity"]
    else:
        args = ["--loss-def", f"{name}={formula.replace('x', 'a')} - y", "--loss", name, "--", "2-3:tanh-1:identity"]
    generate(args)
    sandbox.check()


# ---------------------------------------------------------------- formulas


def check_formula(kind: str, formula: str):
    definitions = parses(spec_module.custom_definitions, kind, {"mine": formula})
    if definitions is not None:
        expr = definitions["mine"].expr
        assert isinstance(expr, sympy.Expr)
        assert not expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)
        assert len(formula) <= MAX_LENGTH
    return definitions


@fuzz(3000)
@given(SEEDS)
def test_activation_formulas_parse_or_fail_cleanly(sandbox, seed):
    g = Grammar(seed)
    check_formula("activation", g.formula_mutant(["x"]) if g.chance(0.7) else g.formula(["x"]))
    sandbox.check()


@fuzz(2000)
@given(SEEDS)
def test_loss_formulas_parse_or_fail_cleanly(sandbox, seed):
    g = Grammar(seed)
    check_formula("loss", g.formula_mutant(["a", "y"]) if g.chance(0.7) else g.formula(["a", "y"]))
    sandbox.check()


@fuzz(600)
@given(SEEDS)
def test_formulas_on_the_command_line_fail_cleanly(sandbox, seed):
    """Formulas through the command line. A valid novel formula starts a SymPy derivation
    (0.05 to 1 s): those run in the next test, with fewer examples, to bound the time."""
    g = Grammar(seed)
    kind = g.pick(["activation", "loss"])
    formula = g.formula_mutant(["x"] if kind == "activation" else ["a", "y"])
    if check_formula(kind, formula) is not None:
        return
    if kind == "activation":
        generate(["--activation", f"mine={formula}", "--", "2-3:mine-1:sigmoid"])
    else:
        generate(["--loss-def", f"mine={formula}", "--loss", "mine", "--", "2-3:tanh-2:sigmoid"])
    sandbox.check()


def formula_trees(variables: list[str]):
    """Formulas as a Hypothesis strategy (they shrink to a minimal formula)."""
    atoms = st.one_of(st.sampled_from(variables), st.sampled_from(NUMBERS[:12]), st.sampled_from(["pi", "e"]))

    def extend(children):
        binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})")
        call = st.tuples(st.sampled_from(UNARY_FUNCTIONS), children).map(lambda t: f"{t[0]}({t[1]})")
        extremum = st.tuples(st.sampled_from(["max", "min"]), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})")
        where = st.tuples(children, st.sampled_from(COMPARISONS[:4]), children, children, children).map(
            lambda t: f"where({t[0]} {t[1]} {t[2]}, {t[3]}, {t[4]})")
        return st.one_of(binary, binary, call, call, extremum, where)

    return st.recursive(atoms, extend, max_leaves=6)


@fuzz(60)
@given(st.sampled_from(["activation", "loss"]).flatmap(
    lambda kind: st.tuples(st.just(kind), formula_trees(["x"] if kind == "activation" else ["a", "y"]))))
def test_valid_formulas_derive_and_generate(sandbox, case):
    """Formulas from the grammar, most of them valid: the full derivation, then the module."""
    kind, formula = case
    if kind == "activation":
        generate(["--activation", f"mine={formula}", "--", "2-3:mine-1:sigmoid"])
    else:
        generate(["--loss-def", f"mine={formula}", "--loss", "mine", "--", "2-3:tanh-2:sigmoid"])
    sandbox.check()


@fuzz(200)
@given(SEEDS)
def test_grammar_formulas_derive_and_render(sandbox, seed):
    """Formulas from the fast grammar that parse: derived, then generated or rendered.
    Without 17-digit numbers: exp(a + 276449.42741822195) or exp(0.1234567*x) + exp(0.7654321*x)
    send SymPy's polynomial algebra (powers of e**(1/10**11)) into minutes and gigabytes, a
    known limit that only the command's time limit stops."""
    g = Grammar(seed)
    kind = g.pick(["activation", "loss"])
    formula = g.formula(["x"] if kind == "activation" else ["a", "y"], g.pick([2, 3]), long_numbers=False)
    if check_formula(kind, formula) is None:
        return
    if kind == "activation":
        args = ["--activation", f"mine={formula}", "--", f"2-3:mine-1:{g.pick(['sigmoid', 'mine', 'identity'])}"]
    else:
        args = ["--loss-def", f"mine={formula}", "--loss", "mine", "--", f"2-3:tanh-2:{g.pick(['sigmoid', 'softmax'])}"]
    (generate if g.chance(0.5) else derive_markdown)(args)
    sandbox.check()


# ---------------------------------------------------------------- TOML documents


@fuzz(1500)
@given(SEEDS)
def test_toml_documents_parse_or_fail_cleanly(sandbox, seed):
    g = Grammar(seed)
    doc = g.document(formulas=lambda: g.formula_mutant(["x"]) if g.chance(0.5) else g.value())
    loss = g.loss_option() if g.chance(0.2) else None
    network = parses(spec_module.parse_toml_text, toml_text(doc, g.chance(0.5)), "fuzz.toml", loss)
    if network is not None:
        assert isinstance(doc.get("name", "network"), str)
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", network.name), network.name
        assert 1 <= network.depth <= MAX_LAYERS
    sandbox.check()


@fuzz(800)
@given(SEEDS)
def test_toml_files_generate_or_fail_cleanly(sandbox, seed):
    g = Grammar(seed)
    doc = g.document(layer_counts=(0, MAX_LAYERS + 1))  # a valid 1000-layer module costs seconds
    path = sandbox.write_spec("net.toml", toml_text(doc, g.chance(0.5)).encode("utf-8"))
    generate([*CUSTOM_OPTIONS, str(path)])
    sandbox.check(["net.toml"])


@fuzz(400)
@given(SEEDS)
def test_toml_bytes_generate_or_fail_cleanly(sandbox, seed):
    g = Grammar(seed)
    doc = g.document(layer_counts=(0, MAX_LAYERS + 1))
    data = g.mutate_bytes(toml_text(doc, g.chance(0.5)).encode("utf-8"))
    path = sandbox.write_spec("net.toml", data)
    generate([*CUSTOM_OPTIONS, str(path)])
    sandbox.check(["net.toml"])


# ---------------------------------------------------------------- spec file names

FILE_NAME_CHARS = st.one_of(
    st.sampled_from(list("abc.-_ ()[]{}$%&#!~^'\"\\`;|<>*?=+,@") + ["\n", "\t", "\r", "\x01", "\x7f", "é", "日",
                                                                      "\u2028", "\u202e", "\udcff", '"""', "\\N",
                                                                      "\\x", "\\u", "\u00a0"]),
    st.characters(codec="utf-8", exclude_characters="/\x00"))


@fuzz(250)
@given(st.lists(FILE_NAME_CHARS, max_size=12).map("".join), st.booleans())
def test_spec_file_names_never_reach_code_unescaped(sandbox, stem, toml_suffix):
    """A TOML file's name is copied into the outputs as the spec's source: whatever it is,
    the module compiles, or the name is refused cleanly."""
    name = stem + (".toml" if toml_suffix else "")
    if name in ("", ".", "..") or len(name.encode("utf-8", "surrogateescape")) > 255:
        return
    try:
        path = sandbox.write_spec(name, b'input = 2\n[[layers]]\nunits = 1\nactivation = "sigmoid"\n')
    except (OSError, UnicodeEncodeError):
        return  # a name this file system refuses
    generate([str(path)])
    sandbox.check([name])


# ---------------------------------------------------------------- the budget


def test_the_fuzz_budget_is_at_least_ten_thousand_inputs():
    assert FUZZ_INPUTS >= 10_000 * min(SCALE, 1), FUZZ_INPUTS
