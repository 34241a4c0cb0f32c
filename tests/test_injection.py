"""Nothing injected (issue 7): names a spec gives (the network's, custom activations' and
losses', the spec file's) are validated as identifiers or kept out of code, so a spec cannot
change what the generated module does beyond its declared architecture.

The structural tests parse generated modules with `ast`: the names a spec chooses appear only
inside string literals (and comments), never as code, and a module's syntax tree does not
depend on them at all."""

import ast
import builtins

import numpy as np
import pytest
from click.testing import CliRunner

from cases import CASES, CUSTOM
from derivgen import spec as spec_module
from derivgen.cli import main
from derivgen.errors import DerivgenError
from helpers import module_source

LAYERS = '[[layers]]\nunits = 3\nactivation = "relu"\n[[layers]]\nunits = 2\nactivation = "sigmoid"\n'


def run(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


def refused(result, says: str = ""):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("derivgen: error: ") and says in lines[0], result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------- names are refused


@pytest.mark.parametrize("name", ['x"""; import os', "x'''; import os", "a\nimport os", "a b", "a\\", "os.system",
                                  "__import__", "_private", "1abc", "\u212a", "a" * 33, ""])
def test_a_network_name_that_is_not_an_identifier_is_refused(tmp_path, name):
    path = tmp_path / "net.toml"
    path.write_text(f"name = {toml_string(name)}\ninput = 2\n" + LAYERS, encoding="utf-8")
    refused(run("generate", str(path)), "name must be")
    with pytest.raises(DerivgenError, match="name must be"):
        spec_module.parse_toml_text(path.read_text(encoding="utf-8"), "net.toml")


def toml_string(text: str) -> str:
    """A TOML basic string."""
    escaped = "".join(c if c not in '"\\' and ord(c) >= 0x20 else f"\\u{ord(c):04x}" for c in text)
    return f'"{escaped}"'


CUSTOM_NAME_ATTACKS = ['a"b', "a'b", 'x"""', "a\nb", "a\rb", "a\\b", "a b", "a;b", "a.b", "a(b)", "a#b",
                       "é", "ｘ", "a\x00b", "__import__", "_x", "9x"]


@pytest.mark.parametrize("name", CUSTOM_NAME_ATTACKS)
def test_custom_names_with_quotes_newlines_or_punctuation_are_refused(tmp_path, name):
    refused(run("generate", "2-3:relu-1:identity", "--activation", f"{name}=x"), "not allowed")
    refused(run("generate", "2-3:relu-1:identity", "--loss-def", f"{name}=(a - y)**2"), "not allowed")
    path = tmp_path / "net.toml"
    path.write_text(f"input = 2\n{LAYERS}[activations.{toml_string(name)}]\nexpr = \"x\"\n", encoding="utf-8")
    refused(run("generate", str(path)), "not allowed")


@pytest.mark.parametrize("spec, loss", [
    ('3-4:relu"""-2:softmax', None),
    ("3-4:relu;import os-2:softmax", None),
    ("3-4:relu\nimport os-2:softmax", None),
    ("3-2:softmax", 'ce"""'),
    ("3-2:softmax", "ce\nimport os"),
])
def test_names_in_an_inline_spec_must_be_known(spec, loss):
    refused(run("generate", spec, *(["--loss", loss] if loss else [])), "unknown")


# ---------------------------------------------------------------- what a module's code may contain

IMPORTABLE = {"numpy", "math", "threading", "operator", "functools"}
DANGEROUS_BUILTINS = {"eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals",
                      "locals", "vars", "breakpoint", "input", "exit", "quit", "help", "memoryview", "__build_class__"}
SAFE_BUILTINS = {name for name in dir(builtins) if not name.startswith("_")} - DANGEROUS_BUILTINS
ALLOWED_DUNDERS = {"__init__"}


def defined_names(tree: ast.Module) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return out


def check_code(source: str, spec_names=()) -> set[str]:
    """The structural check of one generated module. Returns every identifier its code uses."""
    tree = ast.parse(source)
    defined = defined_names(tree)
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert {alias.name.split(".")[0] for alias in node.names} <= IMPORTABLE, ast.dump(node)
        elif isinstance(node, ast.ImportFrom):
            assert node.module.split(".")[0] in IMPORTABLE and node.level == 0, ast.dump(node)
        elif isinstance(node, ast.Name):
            used.add(node.id)
            assert node.id in defined or node.id in SAFE_BUILTINS, f"unexpected name {node.id!r}"
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
            assert not node.attr.startswith("__") or node.attr in ALLOWED_DUNDERS, node.attr
            if isinstance(node.value, ast.Name) and node.value.id == "np":
                assert hasattr(np, node.attr), f"np.{node.attr}"
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            used.add(node.name)
        elif isinstance(node, ast.arg):
            used.add(node.arg)
        assert not isinstance(node, (ast.Global, ast.Nonlocal, ast.AsyncFunctionDef, ast.Await)), ast.dump(node)
    # importing the module runs only definitions: no module-level call statements
    for statement in tree.body:
        assert isinstance(statement, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.FunctionDef,
                                      ast.ClassDef)) or (isinstance(statement, ast.Expr) and
                                                         isinstance(statement.value, ast.Constant)), \
            ast.dump(statement)[:200]
    for name in spec_names:
        assert name not in used, f"the spec's name {name!r} is used as code"
    return used


@pytest.mark.parametrize("case", list(CASES))
def test_builtin_modules_use_only_allowed_code(case):
    check_code(module_source(*CASES[case]))


@pytest.mark.parametrize("case", list(CUSTOM))
def test_custom_modules_use_only_allowed_code(case):
    spec, loss, activations, losses = CUSTOM[case]
    source = module_source(spec, loss, activations=spec_module.custom_definitions("activation", activations),
                           losses=spec_module.custom_definitions("loss", losses))
    check_code(source, spec_names=[*activations, *losses])


# Python words a spec may legally choose as names: they must stay strings.
HOSTILE = {"activations": {"exec": "x/(1 + abs(x))", "open": "max(0, x) + 0.1*min(0, x)"},
           "losses": {"system": "(a - y)**4/4"}, "name": "os"}
BENIGN = {"activations": {"act_one": "x/(1 + abs(x))", "act_two": "max(0, x) + 0.1*min(0, x)"},
          "losses": {"loss_one": "(a - y)**4/4"}, "name": "net"}


def toml_for(names: dict) -> str:
    (first, f1), (second, f2) = names["activations"].items()
    (loss, f3), = names["losses"].items()
    return (f'name = "{names["name"]}"\ninput = 3\nloss = "{loss}"\n'
            f'[[layers]]\nunits = 4\nactivation = "{first}"\n[[layers]]\nunits = 4\nactivation = "tanh"\n'
            f'[[layers]]\nunits = 2\nactivation = "{second}"\n'
            f'[activations.{first}]\nexpr = "{f1}"\n[activations.{second}]\nexpr = "{f2}"\n'
            f'[losses.{loss}]\nexpr = "{f3}"\n')


def without_strings(source: str) -> str:
    """The module's syntax tree with every string literal emptied (comments are not in it)."""
    class Strip(ast.NodeTransformer):
        def visit_Constant(self, node):
            return ast.copy_location(ast.Constant(""), node) if isinstance(node.value, str) else node

    return ast.dump(Strip().visit(ast.parse(source)))


def generated(tmp_path, names: dict, file_name: str) -> str:
    path = tmp_path / file_name
    path.write_text(toml_for(names), encoding="utf-8")
    result = run("generate", str(path))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_names_a_spec_chooses_are_only_strings_in_the_module(tmp_path):
    source = generated(tmp_path, HOSTILE, "hostile.toml")
    hostile = [*HOSTILE["activations"], *HOSTILE["losses"], HOSTILE["name"]]
    check_code(source, spec_names=hostile)
    strings = {node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)}
    assert {"exec", "open", "system"} <= strings  # as the names of ACTIVATIONS and LOSS


def test_the_module_does_not_depend_on_the_names_a_spec_chooses(tmp_path):
    """Same architecture and formulas, other names: the same code, string for string
    apart from the literals that name things."""
    hostile = generated(tmp_path, HOSTILE, "hostile.toml")
    benign = generated(tmp_path, BENIGN, "benign.toml")
    assert hostile != benign
    assert without_strings(hostile) == without_strings(benign)


def test_a_file_name_is_no_way_in_either(tmp_path):
    """The spec file's name is the one other text a module quotes: a name that could
    leave its docstring is refused, an ordinary one stays a string."""
    plain = tmp_path / "plain_net.toml"
    plain.write_text(toml_for(BENIGN), encoding="utf-8")
    out = run("generate", str(plain)).stdout
    assert without_strings(out) == without_strings(generated(tmp_path, BENIGN, "benign.toml"))
    for name in ('evil""" + __import__("os").getcwd() + """.toml', "evil\\N{x}.toml"):
        (tmp_path / name).write_text(toml_for(BENIGN), encoding="utf-8")
        refused(run("generate", str(tmp_path / name)), "rename the file")
