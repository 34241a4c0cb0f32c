"""The command line, through click's CliRunner: good input and bad.

The contract (DESIGN.md, "Command line"): output to stdout unless -o; bad input gives exit
code 2 and one line `derivgen: error: ...` on stderr, never a traceback."""

import importlib.util
import os
import re
import shlex
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

from derivgen import catalog
from derivgen.cli import main
from helpers import assert_clean_error, run

SMALL = "3-4:tanh-2:sigmoid"



def assert_no_traceback(result):
    for text in (result.output, result.stdout, result.stderr):
        assert "Traceback" not in text, text



def stray_temporaries(folder) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(".derivgen-") and name.endswith(".tmp")]


def import_file(path):
    spec = importlib.util.spec_from_file_location(f"_cli_test_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate(tmp_path, spec: str = SMALL, *extra: str, name: str = "net.py"):
    path = tmp_path / name
    result = run("generate", spec, *extra, "-o", str(path))
    assert result.exit_code == 0, result.output
    return path


# --- list ----------------------------------------------------------------------------------

def test_list_shows_every_builtin_with_its_formula():
    result = run("list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    for kind, table in (("activation", catalog.ACTIVATIONS), ("loss", catalog.LOSSES)):
        for name, (formula, aliases) in table.items():
            line = next((line for line in lines if line.split()[:2] == [kind, name]), None)
            assert line is not None, f"{kind} {name} is not listed"
            assert formula in line, line
            for alias in aliases:
                assert alias in line, (alias, line)
    assert len(lines) == len(catalog.ACTIVATIONS) + len(catalog.LOSSES)


@pytest.mark.parametrize("name, formula", [
    ("sigmoid", "1/(1 + exp(-x))"), ("relu", "max(0, x)"), ("tanh", "tanh(x)"),
    ("mse", "(a - y)**2/2"), ("bce", "-(y*log(a) + (1 - y)*log(1 - a))"), ("ce", "-y*log(a)"),
])
def test_list_formulas_are_the_textbook_ones(name, formula):
    assert any(line.split()[1:3] == [name, formula.split()[0]] and formula in line
               for line in run("list").stdout.splitlines())


def test_version_and_help():
    assert run("--version").stdout.strip().startswith("derivgen")
    for command in ([], ["derive"], ["generate"], ["verify"], ["list"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout


# --- derive --------------------------------------------------------------------------------

def test_derive_writes_latex_to_stdout():
    result = run("derive", "2-2:sigmoid-1:sigmoid", "--loss", "mse")
    assert result.exit_code == 0, result.output
    assert_no_traceback(result)
    assert "\\documentclass" in result.stdout
    assert "\\begin{document}" in result.stdout and "\\end{document}" in result.stdout
    assert result.stderr == ""


def test_derive_writes_latex_to_a_file(tmp_path):
    path = tmp_path / "net.tex"
    result = run("derive", "2-2:sigmoid-1:sigmoid", "--loss", "mse", "-o", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = path.read_text(encoding="utf-8")
    assert text == run("derive", "2-2:sigmoid-1:sigmoid", "--loss", "mse").stdout
    assert stray_temporaries(tmp_path) == []


def test_derive_writes_markdown(tmp_path):
    stdout = run("derive", "2-2:sigmoid-1:sigmoid", "--loss", "mse", "--format", "markdown")
    assert stdout.exit_code == 0, stdout.output
    assert stdout.stdout.strip()
    assert "\\documentclass" not in stdout.stdout
    assert re.search(r"^#", stdout.stdout, re.MULTILINE), "no Markdown heading"
    path = tmp_path / "net.md"
    result = run("derive", "2-2:sigmoid-1:sigmoid", "--loss", "mse", "--format", "markdown", "-o", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == stdout.stdout


def test_derive_from_a_toml_file(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text('name = "tiny"\ninput = 2\nloss = "bce"\n'
                    '[[layers]]\nunits = 2\nactivation = "mish"\n'
                    '[[layers]]\nunits = 1\nactivation = "sigmoid"\n'
                    '[activations.mish]\nexpr = "x*tanh(log(1 + exp(x)))"\n', encoding="utf-8")
    result = run("derive", str(path))
    assert result.exit_code == 0, result.output
    assert "\\begin{document}" in result.stdout


def test_derive_rejects_an_unknown_format():
    result = run("derive", SMALL, "--format", "pdf")
    assert result.exit_code == 2
    assert_no_traceback(result)


# --- generate ------------------------------------------------------------------------------

def test_generate_writes_a_module_to_stdout_and_to_a_file(tmp_path):
    stdout = run("generate", SMALL, "--loss", "bce")
    assert stdout.exit_code == 0, stdout.output
    assert "def backward(" in stdout.stdout
    path = tmp_path / "net.py"
    result = run("generate", SMALL, "--loss", "bce", "-o", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert path.read_text(encoding="utf-8") == stdout.stdout
    assert stray_temporaries(tmp_path) == []


def test_generated_module_describes_its_network(tmp_path):
    module = import_file(generate(tmp_path, "3-5:relu-4:tanh-2:softmax", "--loss", "cross-entropy"))
    assert tuple(module.LAYER_SIZES) == (3, 5, 4, 2)
    assert tuple(module.ACTIVATIONS) == ("relu", "tanh", "softmax")
    assert module.LOSS == "ce"


def test_generate_is_deterministic(tmp_path):
    first = generate(tmp_path, SMALL, name="a.py").read_bytes()
    second = generate(tmp_path, SMALL, name="b.py").read_bytes()
    assert first == second


def test_generate_to_a_relative_path(tmp_path):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        result = runner.invoke(main, ["generate", SMALL, "-o", "net.py"])
        assert result.exit_code == 0, result.output
        assert os.path.getsize("net.py") > 0
        assert stray_temporaries(".") == []


def test_header_command_regenerates_the_same_module(tmp_path):
    path = generate(tmp_path, "3-4:my_act-2:identity", "--activation", "my_act=x*sigmoid(x)",
                    "--loss-def", "quartic=(a - y)**4/4", "--loss", "quartic")
    text = path.read_text(encoding="utf-8")
    command = re.search(r"^.*?(derivgen generate .*)$", text, re.MULTILINE)
    assert command, "the header does not say how to regenerate the module"
    words = shlex.split(command.group(1))
    assert words[:2] == ["derivgen", "generate"]
    again = run(*words[1:])
    assert again.exit_code == 0, again.output
    assert again.stdout == text


def test_generated_file_has_ordinary_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = generate(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o640)
    generate(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640, "regenerating changed the file's permissions"


def test_check_is_0_when_current_and_1_after_an_edit(tmp_path):
    path = generate(tmp_path, SMALL, "--loss", "bce")
    current = run("generate", SMALL, "--loss", "bce", "-o", str(path), "--check")
    assert current.exit_code == 0, current.output
    assert_no_traceback(current)

    edited = path.read_text(encoding="utf-8").replace("def forward(", "def forward_(", 1) + "# edited\n"
    path.write_text(edited, encoding="utf-8")
    before = path.stat().st_mtime_ns
    stale = run("generate", SMALL, "--loss", "bce", "-o", str(path), "--check")
    assert stale.exit_code == 1, stale.output
    assert str(path) in stale.stderr
    assert_no_traceback(stale)
    assert path.read_text(encoding="utf-8") == edited, "--check wrote the file"
    assert path.stat().st_mtime_ns == before
    assert stray_temporaries(tmp_path) == []


def test_check_notices_a_different_loss(tmp_path):
    path = generate(tmp_path, SMALL, "--loss", "bce")
    assert run("generate", SMALL, "--loss", "mse", "-o", str(path), "--check").exit_code == 1


def test_check_notices_a_one_byte_difference(tmp_path):
    path = generate(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n", 1))
    assert run("generate", SMALL, "-o", str(path), "--check").exit_code == 1


def test_check_of_a_missing_file_is_1_and_creates_nothing(tmp_path):
    path = tmp_path / "absent.py"
    result = run("generate", SMALL, "-o", str(path), "--check")
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_check_needs_an_output_file():
    assert_clean_error(run("generate", SMALL, "--check"), "-o")


# --- writing files -------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["generate", SMALL], ["derive", SMALL]])
def test_writing_into_a_missing_folder_is_a_clean_error(tmp_path, command):
    target = tmp_path / "missing" / "out.txt"
    assert_clean_error(run(*command, "-o", str(target)), "does not exist")
    assert not (tmp_path / "missing").exists()


def test_writing_over_a_folder_is_a_clean_error_and_leaves_no_temporary(tmp_path):
    (tmp_path / "folder").mkdir()
    assert_clean_error(run("generate", SMALL, "-o", str(tmp_path / "folder")), "cannot write")
    assert stray_temporaries(tmp_path) == []
    assert os.listdir(tmp_path / "folder") == []


def test_failed_rename_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "net.py"
    path.write_text("old contents\n", encoding="utf-8")

    def refuse(source, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    assert_clean_error(run("generate", SMALL, "-o", str(path), "--force"), "Permission denied")
    assert path.read_text(encoding="utf-8") == "old contents\n"
    assert stray_temporaries(tmp_path) == []


def test_failed_write_leaves_no_temporary(tmp_path, monkeypatch):
    import derivgen.cli as cli

    real_fdopen = os.fdopen

    def full_disk(handle, *args, **kwargs):
        stream = real_fdopen(handle, *args, **kwargs)

        def write(text):
            raise OSError(28, "No space left on device")

        stream.write = write
        return stream

    monkeypatch.setattr(cli.os, "fdopen", full_disk)
    assert_clean_error(run("generate", SMALL, "-o", str(tmp_path / "net.py")), "No space left")
    assert os.listdir(tmp_path) == []


def test_interrupted_write_leaves_no_temporary(tmp_path, monkeypatch):
    def interrupted(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    result = CliRunner().invoke(main, ["generate", SMALL, "-o", str(tmp_path / "net.py")])
    assert result.exit_code != 0
    assert os.listdir(tmp_path) == []


# --- bad input through the command line -----------------------------------------------------

BAD = [
    ([""], "empty"),
    (["   "], "empty"),
    (["784"], "no layers"),
    (["784-"], "layer 1"),
    (["--", "-10:relu"], "input"),
    (["784-128"], "width:activation"),
    (["784-0:relu"], "between 1 and"),
    (["784--5:relu"], "layer 1"),
    (["784-1.5:relu"], "positive integer"),
    (["784-abc:relu"], "positive integer"),
    (["784-10:foo"], "unknown activation"),
    (["784-10:r\u00e9lu"], "unknown activation"),
    (["784-10:softmax-10:relu"], "softmax"),
    (["784-2000000:relu"], "between 1 and"),
    (["2-" + "-".join(["2:relu"] * 1001)], "layers"),
    (["3-2:softmax", "--loss", "hinge"], "unknown loss"),
    (["3-2:softmax", "--loss", ""], "loss"),
    (["3-2:mine", "--activation", "mine"], "NAME=EXPR"),
    (["3-2:mine", "--activation", "mine=x**"], "mine"),
    (["3-2:mine", "--activation", "mine=__import__('os').getcwd()"], "not allowed"),
    (["3-2:mine", "--activation", "mine=7"], "must use x"),
    (["3-2:relu", "--activation", "relu=x"], "built in"),
    (["3-2:relu", "--activation", "m\u00efne=x"], "not allowed"),
    (["3-2:relu", "--activation", "my act=x"], "not allowed"),
    (["3-2:relu", "--loss-def", "mse=a"], "built in"),
    (["3-2:relu", "--loss-def", "mine=y**2", "--loss", "mine"], "must use a"),
    (["3-2:relu", "--loss-def", "mine"], "NAME=EXPR"),
    (["absent.toml"], "cannot read"),
]


@pytest.mark.parametrize("command", ["derive", "generate"])
@pytest.mark.parametrize("args, says", BAD, ids=[repr(args)[:60] for args, _ in BAD])
def test_bad_input_is_one_clean_line(command, args, says):
    assert_clean_error(run(command, *args), says)


@pytest.mark.parametrize("text, says", [
    ("input = \n", "not valid TOML"),
    ("[[layers]]\nunits = 2\nactivation = 'relu'\n", "input"),
    ("input = 'x'\n[[layers]]\nunits = 2\nactivation = 'relu'\n", "input"),
    ("input = 2\n[[layers]]\nunits = -1\nactivation = 'relu'\n", "layer 1"),
    ("input = 2\n[[layers]]\nunits = true\nactivation = 'relu'\n", "layer 1"),
    ("input = 2\n[[layers]]\nunits = 1e9\nactivation = 'relu'\n", "layer 1"),
    ("input = 2\nlayers = 3\n", "layers"),
    ("input = 2\n[[layers]]\nunits = 2\nactivation = 5\n", "activation"),
    ("input = 2\n[[layers]]\nunits = 2\nactivation = 'relu'\nextra = 1\n", "units and activation"),
    ("input = 2\nwidth = 3\n[[layers]]\nunits = 2\nactivation = 'relu'\n", "unknown key"),
    ("name = 'a\\u0000b'\ninput = 2\n[[layers]]\nunits = 2\nactivation = 'relu'\n", "name"),
    ("input = 2\n[[layers]]\nunits = 2\nactivation = 'relu'\n[activations.'a\\nb']\nexpr = 5\n", "not allowed"),
    ("input = 2\n[[layers]]\nunits = 2\nactivation = 'relu'\n[activations.m]\nexpr = 'x +'\n", "'m'"),
    ("input = 2\n[[layers]]\nunits = 2\nactivation = 'relu'\n[losses.ce]\nexpr = 'a'\n", "built in"),
], ids=repr)
def test_bad_toml_is_one_clean_line(tmp_path, text, says):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    assert_clean_error(run("generate", str(path)), says)


def test_unknown_activation_error_lists_the_known_ones():
    line = assert_clean_error(run("generate", "784-10:foo"))
    for name in catalog.ACTIVATIONS:
        assert name in line


def test_a_spec_that_looks_like_an_option_is_a_usage_error():
    result = run("generate", "-10:relu")
    assert result.exit_code == 2
    assert_no_traceback(result)


def test_bad_input_through_the_real_entry_point_has_no_traceback():
    process = subprocess.run([sys.executable, "-m", "derivgen.cli", "generate", "784-10:foo"],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stdout == ""
    assert "Traceback" not in process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("derivgen: error: unknown activation"), process.stderr


# --- verify --------------------------------------------------------------------------------

def test_verify_a_missing_file(tmp_path):
    assert_clean_error(run("verify", str(tmp_path / "absent.py")), "absent.py")


def test_verify_a_python_file_that_is_not_a_derivgen_module(tmp_path):
    path = tmp_path / "other.py"
    path.write_text("ANSWER = 42\n\ndef forward(x):\n    return x\n", encoding="utf-8")
    assert_clean_error(run("verify", str(path)), "not a derivgen module")


def test_verify_a_python_file_that_does_not_import(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def forward(:\n", encoding="utf-8")
    assert_clean_error(run("verify", str(broken)), "cannot import")
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('boom\\nsecond line')\n", encoding="utf-8")
    line = assert_clean_error(run("verify", str(raising)), "cannot import")
    assert "boom" in line


def test_verify_a_file_that_is_not_python(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n", encoding="utf-8")
    assert_clean_error(run("verify", str(path)))


def test_verify_a_fresh_module_passes(tmp_path):
    path = generate(tmp_path, SMALL, "--loss", "bce")
    result = run("verify", str(path))
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout
    assert_no_traceback(result)


def test_verify_a_module_with_a_custom_activation_passes(tmp_path):
    path = generate(tmp_path, "3-4:my_act-2:identity", "--activation", "my_act=x*sigmoid(x)")
    result = run("verify", str(path))
    assert result.exit_code == 0, result.output


def off_by_one_percent(path, name: str = "W1") -> None:
    """After the line of backward that computes the gradient of name, scale it by 1.01."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"^(\s*)(d{name}) = .*\.dot\(.*$", re.MULTILINE)
    edited, count = pattern.subn(r"\g<0>\n\g<1>\g<2> *= 1.01", text)
    assert count == 1, f"expected one line computing d{name}"
    path.write_text(edited, encoding="utf-8")


@pytest.mark.parametrize("name", ["W1", "b2"])
def test_verify_catches_a_gradient_off_by_one_percent(tmp_path, name):
    path = generate(tmp_path, SMALL, "--loss", "bce")
    off_by_one_percent(path, name)
    result = run("verify", str(path))
    assert result.exit_code == 1, result.output
    assert "FAILED" in result.stdout
    assert_no_traceback(result)



@pytest.mark.parametrize("args, says", [
    (["generate", SMALL, "--l2", "abc"], "--l2"),
    (["derive", SMALL, "--bogus"], "no such option"),
    (["derive"], "missing argument"),
])
def test_usage_errors_are_one_clean_line(args, says):
    assert_clean_error(run(*args), says)
