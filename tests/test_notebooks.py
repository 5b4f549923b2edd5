"""The example notebooks in ``examples/``: their committed form, and each one run end to end.

``test_committed_*`` check the ``.ipynb`` files as committed: valid nbformat, outputs stripped,
a title with the "Open in Colab" badge, the install cell first, exactly one ``parameters`` cell.

``TestExecuted`` runs every notebook in a fresh Jupyter kernel, the papermill way: a cell
inserted after the one tagged ``parameters`` overrides its defaults with tiny sizes, then
``nbclient`` executes the notebook and the test reads what it printed, tabulated and drew (it
finds cells by their ``id``: ``data``, ``results``, ...). The kernel is ``python3``, which
jupyter_client starts with the interpreter running pytest (run the tests with
``.venv/bin/python -m pytest``). Nothing is downloaded: MNIST falls back to scikit-learn's
digits (``DOWNLOAD = False`` and an empty ``DATA_DIR``), and CIFAR-10 comes from
``tfds.testing.mock_data``. Needs ``nbformat``, ``nbclient`` and ``ipykernel``; skip the runs
with ``-k "not Executed"``.
"""

import ast
import json
import pathlib
import re
import sys

import pytest

import keras_label_relaxation as klr

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
BADGE = (
    "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
    "(https://colab.research.google.com/github/keras-label-relaxation/keras-label-relaxation"
    "/blob/main/examples/{name})"
)


def _source(cell):
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_committed_examples_are_all_there():
    names = {path.name for path in NOTEBOOKS}
    assert {
        "quickstart.ipynb", "tuning.ipynb", "cifar10_gpu.ipynb", "semi_supervised.ipynb",
        "noisy_labels.ipynb",
    } <= names  # fmt: skip


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_valid_nbformat(path):
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.read(path, as_version=nbformat.NO_CONVERT))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_without_outputs(path):
    for index, cell in enumerate(_read(path)["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"cell {index} has outputs"
            assert cell["execution_count"] is None, f"cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_opening_cells(path):
    cells = _read(path)["cells"]
    title = cells[0]
    assert title["cell_type"] == "markdown"
    assert _source(title).startswith("# ")
    assert BADGE.format(name=path.name) in _source(title)

    code = [cell for cell in cells if cell["cell_type"] == "code"]
    install = _source(code[0])
    assert 'find_spec("keras_label_relaxation") is None' in install
    assert "%pip install" in install

    tagged = [cell for cell in cells if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged `parameters`"
    assert tagged[0] is code[1], "the parameters cell follows the install cell"
    # Only NAME = literal lines, so that an injected cell can override every one of them.
    for statement in ast.parse(_source(tagged[0])).body:
        assert isinstance(statement, ast.Assign), ast.unparse(statement)
        [target] = statement.targets
        assert isinstance(target, ast.Name) and target.id.isupper(), ast.unparse(statement)
        ast.literal_eval(statement.value)


@pytest.fixture
def notebook_env(monkeypatch):
    """Environment of the kernel (it inherits this process'), and a check of its interpreter."""
    kernelspec = pytest.importorskip("jupyter_client.kernelspec")
    argv = kernelspec.KernelSpecManager().get_kernel_spec("python3").argv
    # jupyter_client starts a kernel spec's bare "python" with sys.executable.
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info)}
    assert argv[0] in bare or pathlib.Path(argv[0]).resolve() == pathlib.Path(sys.executable), (
        f"The kernel spec `python3` runs {argv[0]}, not {sys.executable}"
    )
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")


def execute(name, tmp_path, setup="", **parameters):
    """Run ``examples/name`` with ``parameters`` (and ``setup`` code) injected; return it."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    [index] = [
        i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])
    ]
    lines = [setup] if setup else []
    lines += [f"{key} = {value!r}" for key, value in parameters.items()]
    injected = nbformat.v4.new_code_cell(
        "\n".join(lines), metadata={"tags": ["injected-parameters"]}
    )
    notebook.cells.insert(index + 1, injected)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    return notebook


def _cell(notebook, cell_id):
    [cell] = [c for c in notebook.cells if c.get("id") == cell_id]
    return cell


def _stdout(cell):
    return "".join(o["text"] for o in cell.outputs if o.get("name") == "stdout")


def _pngs(cell):
    return [o for o in cell.outputs if "image/png" in o.get("data", {})]


def _tables(cell):
    """Every Markdown table the cell displayed, as lists of ``{column: cell text}``."""
    tables = []
    for output in cell.outputs:
        text = output.get("data", {}).get("text/markdown")
        if text is None:
            continue
        header, _, *rows = text.strip().splitlines()

        def split(line):
            return [part.strip() for part in line.strip().strip("|").split("|")]

        tables.append([dict(zip(split(header), split(row))) for row in rows])
    return tables


def _assert_probability(text):
    assert 0.0 <= float(text) <= 1.0, text


class TestExecuted:
    """Each notebook, run end to end on the CPU with tiny sizes and without a network."""

    def test_quickstart(self, tmp_path, notebook_env):
        notebook = execute(
            "quickstart.ipynb",
            tmp_path,
            DATA_DIR=str(tmp_path / "tensorflow_datasets"),
            DOWNLOAD=False,
            EPOCHS=2,
        )
        data = _stdout(_cell(notebook, "data"))
        assert "Falling back to scikit-learn's 8x8 digits" in data
        assert "digits: 1272 training, 225 held-out, 300 test images" in data

        [temperature] = re.findall(r"T = ([0-9.]+)", _stdout(_cell(notebook, "ts")))
        assert float(temperature) in klr.PAPER_TEMPERATURE_GRID

        [table] = _tables(_cell(notebook, "results"))
        rows = {row["loss"]: row for row in table}
        assert list(rows) == ["CE", "LS", "LR", "CE+TS"]
        for row in table:
            _assert_probability(row["ECE"])
            assert float(row["accuracy"]) > 0.5, row  # two epochs learn the digits
            assert float(row["NLL"]) > 0.0 and 0.0 <= float(row["Brier"]) <= 2.0, row
        # Temperature scaling changes the confidence, never the predicted class.
        assert rows["CE+TS"]["accuracy"] == rows["CE"]["accuracy"]

        assert len(_pngs(_cell(notebook, "reliability"))) == len(rows)

    def test_semi_supervised(self, tmp_path, notebook_env):
        notebook = execute(
            "semi_supervised.ipynb", tmp_path, DATA="digits", STEPS=3, BATCH_SIZE=4, SEEDS=2
        )
        assert "1797 images of shape (8, 8, 1): 100 labelled, 799 unlabelled, 898 test" in (
            _stdout(_cell(notebook, "data"))
        )
        targets = _stdout(_cell(notebook, "targets"))
        alphas = ast.literal_eval(re.search(r"alpha: (\[.*\])", targets).group(1))
        assert len(alphas) == 5 and all(0.0 < a < 1.0 for a in alphas)
        [table] = _tables(_cell(notebook, "results"))
        assert [row["method"] for row in table] == [
            "supervised only", "hard pseudo-labels (FixMatch, tau = 0.95)",
            "credal self-training (CSSL)",
        ]  # fmt: skip
        for row in table:
            accuracy, spread = row["test accuracy"].split(" ± ")
            _assert_probability(accuracy)
            _assert_probability(row["test ECE"].split(" ± ")[0])
            assert float(spread) >= 0.0

    def test_noisy_labels(self, tmp_path, notebook_env):
        notebook = execute(
            "noisy_labels.ipynb", tmp_path, DATA="digits", EPOCHS=2, BATCH_SIZE=64, SEED=0
        )
        data = _stdout(_cell(notebook, "data"))
        # 1797 digits, round(0.3 * 1797) = 539 of them the (clean) test split.
        assert "1797 images of shape (8, 8, 1): 1258 training, 539 test" in data
        [(wrong, total)] = re.findall(r"symmetric:0\.4: (\d+) of (\d+) training labels wrong", data)
        # Each label is redrawn with probability 0.4 from all 10 classes: wrong with 0.36.
        n, rate = int(total), 0.4 * 9 / 10
        assert n == 1258
        assert abs(int(wrong) - n * rate) < 5 * (n * rate * (1 - rate)) ** 0.5, wrong

        [table] = _tables(_cell(notebook, "results"))
        assert [row["loss"] for row in table] == ["CE", "LR", "GCE", "SCE", "RDA"]
        for row in table:
            _assert_probability(row["test accuracy"])
            _assert_probability(row["test ECE"])
            _assert_probability(row["wrong labels fitted"])

        ambiguation = _stdout(_cell(notebook, "ambiguation"))
        [beta] = re.findall(r"^beta = ([0-9.]+)$", ambiguation, flags=re.MULTILINE)
        # The threshold of the last of the 2 epochs, CosineAlpha(0.75, 0.6, epochs=2)(1).
        assert float(beta) == pytest.approx(klr.CosineAlpha(0.75, 0.6, epochs=2)(1), abs=1e-3)
        shares = re.findall(
            r"^(?:wrong labels whose set contains the true class"
            r"|correct labels whose set has more than one class): ([0-9.]+) \((\d+) of (\d+)\)$",
            ambiguation,
            flags=re.MULTILINE,
        )
        assert len(shares) == 2, ambiguation
        for (share, count, of), group in zip(shares, (int(wrong), n - int(wrong))):
            _assert_probability(share)
            assert int(of) == group and float(share) == pytest.approx(int(count) / group, abs=1e-4)

    def test_tuning(self, tmp_path, notebook_env):
        tuner_dir = tmp_path / "tuner"
        notebook = execute(
            "tuning.ipynb",
            tmp_path,
            DATA_DIR=str(tmp_path / "tensorflow_datasets"),
            DOWNLOAD=False,
            TRAIN_EXAMPLES=600,
            EPOCHS=1,
            TUNER_DIR=str(tuner_dir),
        )
        assert "Falling back" in _stdout(_cell(notebook, "data"))
        grid = klr.tuning.PAPER_GRIDS["label_relaxation"]
        for objective in ("acc", "ece"):
            trials = list((tuner_dir / f"label_relaxation_{objective}").glob("trial_*"))
            assert len(trials) == len(grid), objective

        cell = _cell(notebook, "grid-table")
        [scores] = _tables(cell)
        assert [float(row["alpha"]) for row in scores] == list(grid)
        for row in scores:
            _assert_probability(row["hold-out accuracy"])
            _assert_probability(row["hold-out ECE"])
        assert len(_pngs(cell)) == 1

        [final] = _tables(_cell(notebook, "retrain"))
        assert [row["selected by"] for row in final] == ["-", "val_accuracy", "val_ece"]
        for row in final:
            _assert_probability(row["test accuracy"])
            _assert_probability(row["test ECE"])
        by_alpha = {float(row["alpha"]): row for row in scores}
        for row, column, pick in (
            (final[1], "hold-out accuracy", max),
            (final[2], "hold-out ECE", min),
        ):
            alpha = float(re.fullmatch(r"LR \(alpha = ([0-9.]+)\)", row["loss"]).group(1))
            assert float(by_alpha[alpha][column]) == pick(float(r[column]) for r in scores)

    def test_cifar10_gpu(self, tmp_path, notebook_env):
        notebook = execute(
            "cifar10_gpu.ipynb",
            tmp_path,
            setup=(  # random CIFAR-10 examples; the name keeps the patches alive
                "import tensorflow_datasets as tfds\n\n"
                "MOCK = tfds.testing.mock_data(num_examples=128)\n"
                "MOCK.__enter__()"
            ),
            DATA_DIR=str(tmp_path / "tensorflow_datasets"),
            DEPTH=11,
            EPOCHS=2,
            GLOBAL_BATCH_SIZE=32,
        )  # MIXED_PRECISION = None: float16 on a GPU only (on a CPU it takes ~15 s a step)
        [(gpus, replicas, policy)] = re.findall(
            r"^(\d+) GPU\(s\), (\d+) replica\(s\), policy (\w+)$",
            _stdout(_cell(notebook, "setup")),
            flags=re.MULTILINE,
        )
        assert policy == ("mixed_float16" if int(gpus) else "float32")
        assert int(replicas) == max(int(gpus), 1)
        assert "cifar10: 128 training, 128 test images" in _stdout(_cell(notebook, "data"))
        assert "2 epochs from 0.1" in _stdout(_cell(notebook, "schedule"))

        cell = _cell(notebook, "results")
        [table] = _tables(cell)
        assert [row["loss"] for row in table] == ["CE", "LR"]
        for row in table:
            _assert_probability(row["accuracy"])
            _assert_probability(row["ECE"])
            assert float(row["NLL"]) > 0.0, row
        assert len(_pngs(cell)) == 2
