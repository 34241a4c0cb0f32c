"""`pip install .` into a fresh virtual environment gives a working derivgen, templates included.

The repository is copied first so the build never touches the working tree; the venv sees the
system's site-packages (for SymPy, NumPy, Jinja, click and setuptools) and installs derivgen
without dependencies and without build isolation, so nothing is downloaded."""

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IGNORED = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                 ".hypothesis", ".venv", "*.pyc")


def bin_path(env: Path, name: str) -> Path:
    folder = env / ("Scripts" if os.name == "nt" else "bin")
    return folder / (name + (".exe" if os.name == "nt" else ""))


def run(command, cwd, timeout=300):
    environ = {key: value for key, value in os.environ.items()
               if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    environ["PIP_NO_INDEX"] = "1"  # nothing may come from the network
    process = subprocess.run([str(part) for part in command], cwd=cwd, env=environ, capture_output=True,
                             text=True, timeout=timeout)
    assert process.returncode == 0, f"{command} exited {process.returncode}:\n{process.stdout}\n{process.stderr}"
    assert "Traceback" not in process.stderr, process.stderr
    return process


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv folder, a folder outside the source tree to run in)."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    env = base / "venv"
    # no pip of its own: ensurepip would bring an old setuptools that shadows the system's;
    # the system's pip, run by the venv's python, installs into the venv
    venv.EnvBuilder(system_site_packages=True, with_pip=False, clear=True).create(env)
    python = bin_path(env, "python")
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", source], cwd=base)
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return env, elsewhere


def test_installed_package_lives_in_the_venv(installed):
    env, elsewhere = installed
    probe = (
        "import json, derivgen, derivgen.cli\n"
        "from importlib import resources\n"
        "from derivgen.templating import _folder\n"
        "templates = resources.files('derivgen.templates')\n"
        "print(json.dumps({'package': derivgen.__file__, 'templates': str(templates),\n"
        "                  'folder': str(_folder()),\n"
        "                  'names': sorted(p.name for p in templates.iterdir())}))\n"
    )
    found = json.loads(run([bin_path(env, "python"), "-c", probe], cwd=elsewhere).stdout)
    venv_root = env.resolve()
    for key in ("package", "templates", "folder"):
        where = Path(found[key]).resolve()
        assert where.is_relative_to(venv_root), f"{key} is {where}, outside the venv"
        assert not where.is_relative_to(ROOT), f"{key} is {where}, inside the source tree"
    wanted = sorted(path.name for path in (ROOT / "templates").glob("*.j2"))
    assert wanted, "the source tree has no templates"
    assert set(wanted) <= set(found["names"]), f"templates missing from the install: {found['names']}"


def test_installed_script_derives_markdown(installed):
    env, elsewhere = installed
    process = run([bin_path(env, "derivgen"), "derive", "2-2:sigmoid-1:sigmoid", "--loss", "mse",
                   "--format", "markdown"], cwd=elsewhere)
    assert process.stdout.strip()
    assert process.stderr == ""


def test_installed_script_derives_latex(installed):
    env, elsewhere = installed
    process = run([bin_path(env, "derivgen"), "derive", "2-2:sigmoid-1:sigmoid", "--loss", "mse"], cwd=elsewhere)
    assert "\\begin{document}" in process.stdout


def test_installed_script_generates_a_module_that_verifies(installed):
    env, elsewhere = installed
    derivgen = bin_path(env, "derivgen")
    process = run([derivgen, "generate", "2-2:sigmoid-1:sigmoid"], cwd=elsewhere)
    assert "def backward(" in process.stdout
    run([derivgen, "generate", "2-2:sigmoid-1:sigmoid", "-o", "net.py"], cwd=elsewhere)
    run([derivgen, "verify", "net.py"], cwd=elsewhere)
    # the installed tool writes what the source tree writes
    here = subprocess.run([sys.executable, "-m", "derivgen.cli", "generate", "2-2:sigmoid-1:sigmoid"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert here.returncode == 0, here.stderr
    assert here.stdout == process.stdout


def test_installed_script_lists(installed):
    env, elsewhere = installed
    assert "sigmoid" in run([bin_path(env, "derivgen"), "list"], cwd=elsewhere).stdout
