"""generated/ holds the example outputs; they must be exactly what the tool makes now.
Regenerate with `python -m derivgen.examples` after a deliberate change."""

import difflib
from pathlib import Path

import pytest
from click.testing import CliRunner

from derivgen.cli import main
from derivgen.examples import EXAMPLES, outputs

FOLDER = Path(__file__).resolve().parent.parent / "generated"


@pytest.mark.parametrize("stem", sorted(EXAMPLES))
def test_generated_examples_are_current(stem):
    for name, text in outputs(stem).items():
        path = FOLDER / name
        assert path.exists(), f"{path} is missing: run python -m derivgen.examples"
        current = path.read_text(encoding="utf-8")
        if current != text:
            diff = "".join(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                f"generated/{name}", "derivgen now", n=1))
            pytest.fail(f"generated/{name} drifted; run python -m derivgen.examples\n{diff[:3000]}")


@pytest.mark.parametrize("stem", sorted(EXAMPLES))
def test_check_flag_agrees(stem):
    spec, loss = EXAMPLES[stem]
    result = CliRunner().invoke(main, ["generate", spec, "--loss", loss, "-o", str(FOLDER / f"{stem}.py"), "--check"])
    assert result.exit_code == 0, result.output
