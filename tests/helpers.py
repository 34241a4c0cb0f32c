"""Generating a module from a spec and importing it, for the tests."""

import importlib.util
import itertools

from derivgen.cli import command_line
from derivgen.codegen import generate
from derivgen.derive import derive
from derivgen.spec import parse_inline

_counter = itertools.count()


def module_source(spec: str, loss: str | None = None, **definitions) -> str:
    network = parse_inline(spec, loss, **definitions)
    return generate(derive(network), command_line("generate", network, []))


def import_source(source: str, folder):
    path = folder / f"generated_{next(_counter)}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__path_on_disk__ = path
    return module


def build(spec: str, loss: str | None, folder, **definitions):
    return import_source(module_source(spec, loss, **definitions), folder)


def run(*args: str, env=None):
    """Invoke the command line in-process; an exception other than SystemExit is a bug and
    fails the test with its traceback."""
    import traceback

    import pytest
    from click.testing import CliRunner

    from derivgen.cli import main

    result = CliRunner().invoke(main, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("derivgen raised instead of exiting cleanly:\n"
                    + "".join(traceback.format_exception(*result.exc_info)))
    return result


def assert_clean_error(result, says: str = "") -> str:
    """Exit code 2, exactly one non-empty stderr line starting `derivgen: error:` that
    contains `says` (any case), nothing on stdout, no traceback. Returns the line."""
    for text in (result.output, result.stdout, result.stderr):
        assert "Traceback" not in text, text
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("derivgen: error: "), lines[0]
    assert result.stdout == "", result.stdout
    assert says.lower() in lines[0].lower(), lines[0]
    return lines[0]
