"""The safe formula parser: good formulas become the right SymPy, hostile ones a one-line error."""

import time

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from derivgen.formula import FUNCTIONS, MAX_DEPTH, MAX_LENGTH, FormulaError, parse_formula

X = sympy.Symbol("x", real=True)
A, Y = sympy.symbols("a y", real=True)
ACTIVATION = {"x": X}
LOSS = {"a": A, "y": Y}


def activation(text):
    return parse_formula(text, ACTIVATION)


def slope_at(expr, point=0):
    return sympy.diff(expr, X).subs(X, point)


# ---------------------------------------------------------------- good formulas


def test_sigmoid_spelled_out_equals_the_function():
    spelled, named = activation("1/(1+exp(-x))"), activation("sigmoid(x)")
    assert sympy.simplify(spelled - named) == 0


def test_half_squared_error_is_exact():
    loss = parse_formula("0.5*(a-y)**2", LOSS)
    assert loss == sympy.Rational(1, 2) * (A - Y) ** 2
    assert not loss.atoms(sympy.Float)


@pytest.mark.parametrize("text, value", [
    ("0.5", sympy.Rational(1, 2)),
    ("0.01", sympy.Rational(1, 100)),
    ("1e-3", sympy.Rational(1, 1000)),
    ("2.5E2", sympy.Integer(250)),
    (".25", sympy.Rational(1, 4)),
    ("1_000.5", sympy.Rational(2001, 2)),
    ("0x1f", sympy.Integer(31)),
    ("0.1 + 0.2", sympy.Rational(3, 10)),
    ("1e12", sympy.Integer(10**12)),
    ("1e-12", sympy.Rational(1, 10**12)),
    ("10**12", sympy.Integer(10**12)),
    ("0", sympy.Integer(0)),
    ("-+-3", sympy.Integer(3)),
    ("0.5**64", sympy.Rational(1, 2**64)),
])
def test_numbers_are_exact(text, value):
    result = activation(text)
    assert result == value
    assert not result.atoms(sympy.Float)


def test_mish_parses():
    assert activation("x*tanh(log(1 + exp(x)))") == X * sympy.tanh(sympy.log(1 + sympy.exp(X)))


def test_constants_and_functions():
    assert activation("pi") == sympy.pi
    assert activation("e") == sympy.E
    assert activation("e**x") == sympy.exp(X)
    assert activation("softplus(x)") == sympy.log(1 + sympy.exp(X))
    assert activation("sqrt(x) + erf(x) + cosh(x) + sinh(x) + log(x)") == (
        sympy.sqrt(X) + sympy.erf(X) + sympy.cosh(X) + sympy.sinh(X) + sympy.log(X))
    assert activation("x**(1/3)") == X ** sympy.Rational(1, 3)
    assert activation("x**-64") == X**-64
    assert activation("x**0.125") == X ** sympy.Rational(1, 8)
    assert activation("sqrt(2)*x") == sympy.sqrt(2) * X
    assert activation("3**2.5") == 9 * sympy.sqrt(3)
    assert activation("2**x") == 2**X
    assert set(FUNCTIONS) >= {"exp", "log", "sigmoid", "softplus", "max", "min", "where", "abs"}


def test_a_variable_named_like_a_constant_wins():
    assert parse_formula("e*x", {"x": X, "e": A}) == A * X


@pytest.mark.parametrize("text", ["max(0, x)", "max(x,0)", "max(x, 0.0)"])
def test_relu_either_spelling_takes_the_constant_at_the_tie(text):
    relu = activation(text)
    assert relu == sympy.Piecewise((X, X > 0), (0, True))
    assert slope_at(relu) == 0
    assert slope_at(relu, 1) == 1 and slope_at(relu, -1) == 0


def test_min_takes_the_constant_at_the_tie():
    assert activation("min(x, 6)") == sympy.Piecewise((X, X < 6), (6, True))
    assert slope_at(activation("min(x, 6)"), 6) == 0


@pytest.mark.parametrize("text", ["min(max(0, x), 6)", "max(0, min(x, 6))", "min(6, max(x, 0))"])
def test_clamps_are_distributed_and_keep_the_tie_rule(text):
    relu6 = activation(text)
    for point, value, slope in [(-1, 0, 0), (0, 0, 0), (3, 3, 1), (6, 6, 0), (7, 6, 0)]:
        assert relu6.subs(X, point) == value
        assert slope_at(relu6, point) == slope, (text, point)
    # no condition holds a Piecewise: SymPy would solve inequalities to rewrite it
    assert all(not cond.has(sympy.Piecewise) for pw in relu6.atoms(sympy.Piecewise) for _, cond in pw.args)


def test_a_long_chain_of_clamps_stays_small_and_fast():
    start = time.perf_counter()
    chain = activation("max(" * 11 + "x, 0), 1), 2), 3), 4), 5), 6), 7), 8), 9), 10)")
    assert time.perf_counter() - start < 0.5
    assert chain.subs(X, 20) == 20 and chain.subs(X, 5) == 10 and slope_at(chain, 10) == 0


def test_hard_tanh():
    hard_tanh = activation("max(-1, min(1, x))")
    assert [hard_tanh.subs(X, v) for v in (-2, -1, 0, 1, 2)] == [-1, -1, 0, 1, 1]
    assert [slope_at(hard_tanh, v) for v in (-2, -1, 0, 1, 2)] == [0, 0, 1, 0, 0]


def test_max_of_two_expressions():
    assert activation("max(x, x**3)") == sympy.Piecewise((X, X > X**3), (X**3, True))
    assert activation("min(x, -x)") == sympy.Piecewise((X, X < -X), (-X, True))


def test_where_and_abs_at_the_kink():
    leaky = activation("where(x > 0, x, 0.01*x)")
    assert leaky == sympy.Piecewise((X, X > 0), (X / 100, True))
    assert slope_at(leaky) == sympy.Rational(1, 100)
    assert slope_at(activation("where(x >= 0, x, 0)")) == 1
    assert slope_at(activation("abs(x)")) == 0
    assert activation("abs(x)") == sympy.Abs(X)


def test_leading_and_trailing_spaces_are_fine():
    assert activation("  x + 1  ") == X + 1


# ---------------------------------------------------------------- hostile formulas


def hostile_corpus(canary):
    c = str(canary)
    return [
        f"__import__('os').remove('{c}')",
        f"__import__('os').system('touch {c}')",
        f"open('{c}','w')",
        f"open('{c}','w').write('x')",
        f"exec(\"open('{c}','w')\")",
        f"eval(\"open('{c}','w')\")",
        f"(lambda: open('{c}','w'))()",
        f"[open('{c}','w') for i in (1,)]",
        f"f'{{open(\"{c}\",\"w\")}}'",
        f"exp(x) if open('{c}','w') else 0",
        f"getattr(__builtins__, 'open')('{c}', 'w')",
        "lambda: 1", "[i for i in x]", "{i for i in x}", "{i: i for i in x}", "(i for i in x)",
        "f'{x}'", "x[0]", "x[0:1]", "exp(x)[0]", "(q := 1)", "x.real", "x.__class__",
        "x.__class__.__mro__", "x.__class__.__mro__[1].__subclasses__()", "().__class__",
        "eval('1')", "globals()", "locals()", "vars()", "getattr(x, 'real')", "__import__",
        "*x", "exp(*x)", "exp(**x)", "exp(x=1)", "log(x, base=2)", "x if x else 1",
        "x and x", "x or 1", "not x", "~x", "x % 2", "x // 2", "x @ x", "x ^ 2", "x | 1",
        "x << 1", "x == 1", "x > 0", "x < 1 < 2", "where(x == 1, x, 0)", "where(x != 1, x, 0)",
        "where(0 < x < 1, x, 0)", "where(x > 0 and x < 1, x, 0)", "where(x, x, 0)",
        "where(x > 0, x > 1, 0)", "'x'", "b'x'", "None", "True", "False", "...", "1j", "x, x",
        "[x]", "{x}", "{'a': x}", "()", "10**10**10", "9**9**9**9", "exp(x)**10**10**10",
        "2**1000", "x**65", "x**(2**7)", "x**1e3", "x**exp(5)", "1e400", "-1e400", "1e-400",
        "1e99999999999999999999999999999", "12345678901234567890123", "0.123456789012345678901",
        "10**13", "1e12*10", "exp(100)", "exp(exp(exp(10)))", "cosh(10**12)", "0**-1",
        "x/0", "x/(x-x)", "log(0)", "sqrt(-1)", "(-8)**(1/3)", "x**0.3333333",
        "999999999999**0.999", "999999999999**0.9999999999", "x*999999999999**0.99999999999",
        "(x/123456789012.34567)**(999/1000)", "2**0.1234567890123456789",
        "max(max(max(max(max(max(max(max(x, x**2), x**3), x**4), x**5), x**6), x**7), x**8), x**9)",
        "where(max(x, 0) > 1, x, 0)", "max(x, 2*max(x, 0))", "where(tanh(x) > max(1/x + x, sqrt(x)), x, 0)",
        "x" * (MAX_LENGTH + 1), "x+" * 50000, "(" * 5000 + "x" + ")" * 5000,
        "exp(" * 200 + "x" + ")" * 200, "-" * (MAX_DEPTH + 1) + "x", "+".join(["x"] * 60),
        "(" * 199 + "x" + ")" * 199 + "+(", "", "   ", "z", "os", "os.remove", "x*z",
        "foo(x)", "sigmoid", "exp", "exp()", "exp(x, x)", "max(x)", "where(x > 0, x)",
        "x\x00", "\x00", "ẋ", "x + ẋ", "ｘ", "𝑥", "é*x", "x; y", "x;", "x\ny", "x\r", "x\t+1",
        "x # comment", "x = 1", "import os", "del x", "yield x", "await x", "x +", "exp(",
        "x)", "\\", "$x", "`x`", "x?",
    ]


def test_hostile_formulas_are_refused_quickly_and_never_run(tmp_path):
    canary = tmp_path / "CANARY"
    for text in hostile_corpus(canary):
        start = time.perf_counter()
        with pytest.raises(FormulaError) as caught:
            activation(text)
            pytest.fail(f"accepted: {text[:80]!r}")
        elapsed = time.perf_counter() - start
        assert elapsed < 0.5, (text[:60], elapsed)
        message = str(caught.value)
        assert "\n" not in message and "\r" not in message, message
        assert message.startswith("formula ") and len(message) < 400, message
    assert not canary.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, words", [
    ("x.__class__", ["attribute access", "column 2"]),
    ("foo(x)", ["unknown function 'foo'", "allowed: exp, log"]),
    ("x +", ["invalid syntax", "column 4"]),
    ("z*2", ["unknown name 'z'", "allowed: x, pi, e", "column 1"]),
    ("x**65", ["exponent", "too large"]),
    ("9**9**9**9", ["exponent", "too large"]),
    ("1e400", ["out of range"]),
    ("exp(x=1)", ["keyword"]),
    ("log(x, 10)", ["log() takes 1 argument"]),
    ("where(x == 1, x, 0)", ["'=='", "<, <=, > or >="]),
    ("where(0 < x < 1, x, 0)", ["chained"]),
    ("x > 0", ["comparison"]),
    ("x ^ 2", ["'^'", "**"]),
    ("x if x else 1", ["where"]),
    ("(q := 1)", ["assignment", "column 2"]),
    ("'abc'", ["string"]),
    ("x/0", ["division by zero", "column 3"]),
    ("x**0.3333", ["denominator", "1/3"]),
    ("where(max(x, 0) > 1, x, 0)", ["comparison cannot contain max/min/where", "column 7"]),
    ("sqrt(-1)", ["not a real number"]),
    ("ẋ", ["non-ASCII", "column 1"]),
    ("x\ny", ["control character", "column 2"]),
    ("x" * 1000, ["too long", "1000"]),
    ("-" * 100 + "x", ["nested too deeply"]),
    ("", ["empty"]),
])
def test_messages_say_what_and_where(text, words):
    with pytest.raises(FormulaError) as caught:
        activation(text)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_long_formulas_are_shortened_in_the_message():
    message = str(pytest.raises(FormulaError, activation, "x + " * 90 + "z").value)
    assert len(message) < 200 and "..." in message


def test_formula_error_is_a_value_error():
    assert issubclass(FormulaError, ValueError)
    with pytest.raises(FormulaError):
        parse_formula(None, ACTIVATION)


# ---------------------------------------------------------------- property


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_gives_an_expression_or_a_formula_error(text):
    try:
        result = activation(text)
    except FormulaError as err:
        assert "\n" not in str(err)
    else:
        assert isinstance(result, sympy.Expr)


FORMULA_PIECES = st.sampled_from(
    ["x", "1", "2", "9", "0.5", "1e3", "pi", "e", "+", "-", "*", "/", "**", "(", ")", ",",
     " ", ">", "exp(", "log(", "sqrt(", "max(", "where(", "sigmoid(", "abs("])


@settings(max_examples=300, deadline=None)
@given(st.lists(FORMULA_PIECES, max_size=25).map("".join))
def test_formula_like_text_gives_an_expression_or_a_formula_error(text):
    start = time.perf_counter()
    try:
        result = activation(text)
    except FormulaError as err:
        assert "\n" not in str(err)
    else:
        assert isinstance(result, sympy.Expr)
    assert time.perf_counter() - start < 0.5, text
