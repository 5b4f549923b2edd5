"""Every code block in the README runs.

Python blocks run as they are (in this process, or in a fresh one where a block picks its
own backend or a ``tf.distribute`` strategy). Bash blocks run with bash in a scratch
directory holding the files they name (``my_data.npz``, an IDX directory, ``examples/``),
``python``/``klr`` from this environment, and these changes that keep them quick and local:

- ``klr compare`` lines get ``--losses ce,lr --epochs 1 --limit 150 --seeds 1`` appended,
  ``klr semi-supervised`` lines ``--data digits --seeds 1 --steps 2 --batch-size 4`` (also
  after environment assignments and before a trailing ``&``);
- ``klr reproduce`` runs on tensorflow-datasets' mock data with its preset shrunk
  (``tests/_mock_reproduce.py``: no CIFAR here);
- ``make X`` becomes ``make -n -C <repo> X`` (the recipe is checked, not rerun: it is the
  command running this test);
- ``pip install`` installs the repository itself with ``--dry-run --no-deps`` instead of the
  GitHub URL (no network here);
- fixed ports become free ones, and ``wait`` checks every background job's exit status.
"""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import free_ports, write_idx

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
GITHUB = "git+https://github.com/keras-label-relaxation/keras-label-relaxation"
COMPARE_OVERRIDES = "--losses ce,lr --epochs 1 --limit 150 --seeds 1"
SEMI_SUPERVISED_OVERRIDES = "--data digits --seeds 1 --steps 2 --batch-size 4"


def test_readme_has_examples_of_every_kind():
    assert len(PYTHON_BLOCKS) >= 8 and len(BASH_BLOCKS) >= 5
    # Fenced blocks only (no indented ones), each of a kind a test below runs or checks.
    assert set(re.findall(r"^```(\w+)$", README, flags=re.M)) == {"python", "bash", "bibtex"}
    assert not re.search(r"\n\n    \S", README.split("## Citation")[0])


def test_readme_citation_is_the_papers_bibtex_entry():
    (entry,) = re.findall(r"```bibtex\n(.*?)```", README, flags=re.S)
    assert entry.startswith("@inproceedings{") and entry.count("{") == entry.count("}")
    fields = dict(re.findall(r"^\s+(\w+)\s*=\s*\{(.*)\},?$", entry, flags=re.M))
    assert fields["title"] == "From Label Smoothing to Label Relaxation"
    assert fields["year"] == "2021" and "AAAI" in fields["booktitle"]
    assert fields["author"].startswith("Lienen, Julian and H")


def _own_process(block):
    return "KERAS_BACKEND" in block or "Strategy" in block


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_readme_python_block_runs(index, tmp_path):
    block = PYTHON_BLOCKS[index]
    name = f"README.md[python block {index}]"
    if not _own_process(block):
        exec(compile(block, name, "exec"), {})
        return
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")}
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, f"{name}\n{result.stderr[-3000:]}"


def _prepare_directory(directory):
    """The files the bash blocks name, made from scikit-learn's digits."""
    from keras_label_relaxation.datasets import load_digits

    x, y = load_digits()
    images = np.round(x[..., 0] * 255).astype(np.uint8)
    np.savez(directory / "my_data.npz", x_train=images[:1400], y_train=y[:1400],
             x_test=images[1400:], y_test=y[1400:])  # fmt: skip
    idx = directory / "path" / "to" / "idx-dir"
    idx.mkdir(parents=True)
    for split, part in (("train", slice(None, 1400)), ("t10k", slice(1400, None))):
        write_idx(idx / f"{split}-images-idx3-ubyte.gz", images[part], compress=True)
        write_idx(idx / f"{split}-labels-idx1-ubyte.gz", y[part].astype(np.uint8), compress=True)
    (directory / "examples").symlink_to(ROOT / "examples")


def _localise(block):
    """The block as this test runs it (see the module docstring)."""
    ports = {}
    block = block.replace("\\\n", " ")
    lines = []
    for line in block.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line) if not line.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        command = re.match(r"^((?:\w+=\S*\s+)*)(klr [\w-]+)(.*?)(\s*&)?$", line)
        if command and command[2] == "klr compare":
            line = f"{command[1]}{command[2]}{command[3]} {COMPARE_OVERRIDES}{command[4] or ''}"
        elif command and command[2] == "klr semi-supervised":
            line = f"{command[1]}{command[2]}{command[3]} {SEMI_SUPERVISED_OVERRIDES}"
            line += command[4] or ""
        elif command and command[2] == "klr reproduce":
            line = f"{command[1]}python {ROOT / 'tests' / '_mock_reproduce.py'}{command[3]}"
            line += command[4] or ""
        elif line.startswith("make "):
            line = f"make -n -C {ROOT} {line[len('make ') :]}"
        elif line.startswith("pip install"):
            line = line.replace(GITHUB, f"file://{ROOT}")
            line = line.replace("pip install", "python -m pip install --dry-run --no-deps -q", 1)
        elif line.strip() == "wait":
            line = 'for job in $(jobs -p); do wait "$job"; done'
        for port in re.findall(r"(?:localhost:|ORACLE_PORT=)(\d{4,5})", line):
            line = line.replace(port, str(ports.setdefault(port, free_ports()[0])))
        lines.append(line)
    return "\n".join(lines)


def test_localise_rewrites_what_cannot_run_here():
    script = _localise(
        "make demo  # two spaces before a comment\n"
        "klr compare --dataset digits \\\n    --seeds 3\n"
        "klr semi-supervised --seeds 3\n"
        f'pip install "keras-label-relaxation @ {GITHUB}"\n'
        "wait\n"
        "A=1 B=x klr compare --out o &\n"
        "KERASTUNER_TUNER_ID=chief klr reproduce table2 --out r &  # the chief\n"
    )
    lines = script.splitlines()
    assert lines[0] == f"make -n -C {ROOT} demo"
    assert lines[1].endswith("--seeds 3 " + COMPARE_OVERRIDES)
    assert lines[2] == "klr semi-supervised --seeds 3 " + SEMI_SUPERVISED_OVERRIDES
    assert f"@ file://{ROOT}" in lines[3] and "--dry-run" in lines[3]
    assert "jobs -p" in lines[4]
    assert lines[5] == f"A=1 B=x klr compare --out o {COMPARE_OVERRIDES} &"
    mock = ROOT / "tests" / "_mock_reproduce.py"
    assert lines[6] == f"KERASTUNER_TUNER_ID=chief python {mock} table2 --out r &"


@pytest.mark.parametrize("index", range(len(BASH_BLOCKS)))
def test_readme_bash_block_runs(index, tmp_path):
    _prepare_directory(tmp_path)
    script = _localise(BASH_BLOCKS[index])
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", no_grpc_proxy="127.0.0.1")
    env.pop("KERAS_BACKEND", None)
    env.pop("TF_CONFIG", None)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, f"{script}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
