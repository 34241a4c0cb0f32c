"""derivgen never loses a file: it overwrites only what it wrote and nobody edited."""

from click.testing import CliRunner

from derivgen.cli import main
from derivgen.stamp import stamp, untouched

SPEC = "3-4:tanh-2:sigmoid"


def generate(*args):
    return CliRunner().invoke(main, ["generate", SPEC, *args])


def test_stamp_round_trip():
    for kind in ("python", "latex", "markdown"):
        text = stamp("body\nmore\n", kind)
        assert untouched(text)
        assert not untouched(text.replace("more", "mare"))
        assert not untouched("body\nmore\n")


def test_regenerating_an_unedited_module_is_allowed(tmp_path):
    path = tmp_path / "m.py"
    assert generate("-o", str(path)).exit_code == 0
    first = path.read_text()
    assert generate("--loss", "mse", "-o", str(path)).exit_code == 0
    assert path.read_text() != first


def test_an_edited_module_is_not_overwritten(tmp_path):
    path = tmp_path / "m.py"
    assert generate("-o", str(path)).exit_code == 0
    edited = path.read_text().replace("def predict", "def predict_mine")
    path.write_text(edited)
    result = generate("--loss", "mse", "-o", str(path))
    assert result.exit_code == 2
    assert "refusing to overwrite" in result.stderr and "--force" in result.stderr
    assert path.read_text() == edited
    assert generate("--loss", "mse", "-o", str(path), "--force").exit_code == 0
    assert untouched(path.read_text())


def test_a_file_derivgen_did_not_write_is_not_overwritten(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("precious = True\n")
    result = generate("-o", str(path))
    assert result.exit_code == 2 and "refusing to overwrite" in result.stderr
    assert path.read_text() == "precious = True\n"
    assert list(tmp_path.iterdir()) == [path]


def test_binary_or_unreadable_files_are_not_overwritten(tmp_path):
    path = tmp_path / "data.py"
    path.write_bytes(b"\xff\xfe\x00binary")
    assert generate("-o", str(path)).exit_code == 2
    assert path.read_bytes() == b"\xff\xfe\x00binary"


def test_the_stamp_says_nothing_that_changes_between_runs():
    assert generate().stdout == generate().stdout


def test_documents_are_protected_too(tmp_path):
    thesis = tmp_path / "thesis.tex"
    thesis.write_text("my own thesis\n")
    result = CliRunner().invoke(main, ["derive", SPEC, "-o", str(thesis)])
    assert result.exit_code == 2 and "refusing to overwrite" in result.stderr
    assert thesis.read_text() == "my own thesis\n"
    notes = tmp_path / "notes.md"
    for loss in ("bce", "mse"):  # the second run replaces what the first wrote
        assert CliRunner().invoke(main, ["derive", SPEC, "--loss", loss, "--format", "markdown",
                                         "-o", str(notes)]).exit_code == 0
    assert untouched(notes.read_text()) and "mse" in notes.read_text()


def test_a_pdf_is_replaced_only_if_derivgen_built_it(tmp_path):
    from derivgen.cli import written_by_us
    from derivgen.pdf import MARK

    assert written_by_us(b"%PDF-1.5\n...%%EOF\n" + MARK)
    assert not written_by_us(b"%PDF-1.5\n...%%EOF\n")
