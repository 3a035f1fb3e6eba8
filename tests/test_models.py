"""Model specs: parsing, loading, how callables are read, built-in workloads, and every error text."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuner.errors import BadInput, ModelSpecError
from tuner.models import (
    ModelSpec,
    batch,
    check_outputs,
    factory,
    input_generator,
    load_model,
    parse_spec,
    per_item,
    resolve,
    validate,
)
from tuner.models.builtin import BUILTINS

FIXTURES = Path(__file__).parent / "fixtures" / "models"


def fx(name: str, attr: str) -> str:
    """An absolute file spec for a fixture model."""
    return f"{FIXTURES / name}:{attr}"


@pytest.fixture
def isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore sys.path and forget modules imported during the test (resolve edits both)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    # Only modules this file creates: unloading numpy's lazily imported parts would break numpy.
    for name in set(sys.modules) - before:
        if name.startswith(("_tuner_file_", "tuner_")):
            del sys.modules[name]


def write_module(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


# --------------------------------------------------------------------------- parse_spec


@pytest.mark.parametrize(
    ("text", "kind", "target", "attr"),
    [
        ("builtin:mlp", "builtin", "mlp", "mlp"),
        ("mypkg.serving:load", "module", "mypkg.serving", "load"),
        ("serving:app.predict", "module", "serving", "app.predict"),
        ("m.py:fn", "file", os.path.abspath("m.py"), "fn"),
        ("models/m.py:fn", "file", os.path.abspath("models/m.py"), "fn"),
        ("/abs/models/m.py:fn", "file", "/abs/models/m.py", "fn"),
        ("  builtin:sleep ", "builtin", "sleep", "sleep"),
    ],
)
def test_parse_spec(text: str, kind: str, target: str, attr: str) -> None:
    ms = parse_spec(text)
    assert (ms.kind, ms.target, ms.attr) == (kind, target, attr)
    assert ms.spec == text.strip()


def test_parse_spec_windows_drive_letter_splits_on_last_colon() -> None:
    ms = parse_spec(r"C:\x\m.py:fn")
    assert ms.kind == "file"
    assert ms.attr == "fn"
    assert ms.target.endswith(r"C:\x\m.py")


def test_model_spec_pickles() -> None:
    # The engine sends specs to worker processes.
    ms = parse_spec("builtin:mlp")
    assert pickle.loads(pickle.dumps(ms)) == ms


@pytest.mark.parametrize(
    "text", ["foo", "mypkg.serving", "m.py", "m.py:", ":fn", "builtin:", "a-b:fn", "m.py:1x"]
)
def test_parse_spec_syntax_errors(text: str) -> None:
    with pytest.raises(ModelSpecError) as e:
        parse_spec(text)
    assert str(e.value) == (
        f"'{text}': expected builtin:NAME, package.module:attr, path/file.py:attr or a model file "
        "(.onnx, .pt, .pt2, .skops, .joblib, .pkl)"
    )
    assert isinstance(e.value, BadInput)  # the CLI maps it to exit code 2


# --------------------------------------------------------------------------- errors, exact text


def test_file_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSpecError) as e:
        load_model("path/m.py:fn")
    assert str(e.value) == f"path/m.py:fn: file not found: {tmp_path / 'path' / 'm.py'}"


@pytest.mark.usefixtures("isolated_imports")
def test_module_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSpecError) as e:
        load_model("tuner_nopkg_xyz.serving:load")
    assert str(e.value) == "tuner_nopkg_xyz.serving:load: no module named 'tuner_nopkg_xyz'"


@pytest.mark.usefixtures("isolated_imports")
def test_submodule_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_module(tmp_path, "tuner_pkg_a/__init__.py", "")
    with pytest.raises(ModelSpecError) as e:
        load_model("tuner_pkg_a.serving:load")
    assert str(e.value) == "tuner_pkg_a.serving:load: no module named 'tuner_pkg_a.serving'"


@pytest.mark.usefixtures("isolated_imports")
def test_import_error_inside_module_is_not_module_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_module(tmp_path, "tuner_pkg_b/__init__.py", "")
    write_module(tmp_path, "tuner_pkg_b/serving.py", "import tuner_missing_dep_foo\n")
    with pytest.raises(ModelSpecError) as e:
        load_model("tuner_pkg_b.serving:load")
    assert str(e.value) == (
        "tuner_pkg_b.serving:load: importing tuner_pkg_b.serving raised ModuleNotFoundError: "
        "No module named 'tuner_missing_dep_foo'"
    )


@pytest.mark.usefixtures("isolated_imports")
def test_import_error_inside_file() -> None:
    spec = fx("import_error.py", "predict")
    with pytest.raises(ModelSpecError) as e:
        load_model(spec)
    assert str(e.value) == (
        f"{spec}: importing {FIXTURES / 'import_error.py'} raised ModuleNotFoundError: "
        "No module named 'tuner_fixture_missing_dependency'"
    )


@pytest.mark.usefixtures("isolated_imports")
def test_attribute_missing_in_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_module(tmp_path, "tuner_pkg_c/__init__.py", "")
    write_module(tmp_path, "tuner_pkg_c/serving.py", "x = 1\n")
    with pytest.raises(ModelSpecError) as e:
        load_model("tuner_pkg_c.serving:load")
    assert str(e.value) == "tuner_pkg_c.serving:load: module 'tuner_pkg_c.serving' has no attribute 'load'"


@pytest.mark.usefixtures("isolated_imports")
def test_attribute_missing_in_file() -> None:
    spec = fx("batch_fn.py", "nope")
    with pytest.raises(ModelSpecError) as e:
        load_model(spec)
    assert str(e.value) == f"{spec}: file '{FIXTURES / 'batch_fn.py'}' has no attribute 'nope'"


@pytest.mark.usefixtures("isolated_imports")
def test_not_callable() -> None:
    spec = fx("batch_fn.py", "THRESHOLD")
    with pytest.raises(ModelSpecError) as e:
        load_model(spec)
    assert str(e.value) == f"{spec}: 'THRESHOLD' is an int, not callable"


@pytest.mark.usefixtures("isolated_imports")
def test_factory_raised() -> None:
    spec = fx("raising_factory.py", "load")
    with pytest.raises(ModelSpecError) as e:
        load_model(spec)
    assert str(e.value) == f"{spec}: factory load() raised ValueError: bad weights"
    assert isinstance(e.value.__cause__, ValueError)  # kept for debugging, never shown to the user


@pytest.mark.usefixtures("isolated_imports")
def test_factory_returned_non_callable() -> None:
    spec = fx("counting_factory.py", "not_a_model")
    with pytest.raises(ModelSpecError) as e:
        load_model(spec)
    assert str(e.value) == f"{spec}: factory not_a_model() returned an int, not a callable"


@pytest.mark.usefixtures("isolated_imports")
def test_callable_with_wrong_signature() -> None:
    spec = fx("batch_fn.py", "two_args")
    with pytest.raises(ModelSpecError) as e:
        load_model(spec)
    assert str(e.value) == (
        f"{spec}: two_args(a, b) cannot be called with one partition nor with "
        "no arguments; expected fn(partition), @per_item fn(item) or a zero-argument factory"
    )


def test_unknown_builtin() -> None:
    with pytest.raises(ModelSpecError) as e:
        load_model("builtin:nope")
    assert str(e.value) == "builtin:nope: unknown built-in model; choose from mlp, pyloop, sleep"


@pytest.mark.usefixtures("isolated_imports")
def test_syntax_error_in_file(tmp_path: Path) -> None:
    # Written here rather than kept under fixtures/: a broken .py in the repo would break ruff.
    path = write_module(tmp_path, "m.py", "def ok():\n    pass\ndef broken(:\n    pass\n")
    spec = f"{path}:broken"
    with pytest.raises(ModelSpecError) as e:
        load_model(spec)
    assert str(e.value) == f"{spec}: SyntaxError in {path} line 3: invalid syntax"


def test_not_a_spec() -> None:
    with pytest.raises(ModelSpecError) as e:
        load_model(42)  # type: ignore[arg-type]
    assert str(e.value) == "42: expected a model spec string or a callable, not an int"


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ([1, 2, 3], "m:f: returned 3 outputs for 4 inputs"),
        ([1], "m:f: returned 1 output for 4 inputs"),
        (np.zeros((5, 2)), "m:f: returned 5 outputs for 4 inputs"),
        (
            None,
            "m:f: returned None for 4 inputs; expected a list or array with one output per item",
        ),
        (
            "abcd",
            "m:f: returned a str for 4 inputs; expected a list or array with one output per item",
        ),
        (
            np.float32(1.0),
            "m:f: returned a float32 for 4 inputs; expected a list or array with one output per item",
        ),
        (
            np.array(1.0),
            "m:f: returned a scalar for 4 inputs; expected a list or array with one output per item",
        ),
    ],
)
def test_check_outputs(outputs: Any, message: str) -> None:
    with pytest.raises(ModelSpecError) as e:
        check_outputs("m:f", [1, 2, 3, 4], outputs)
    assert str(e.value) == message


def test_check_outputs_accepts_one_per_item() -> None:
    check_outputs("m:f", np.zeros((4, 256)), np.zeros((4, 10)))
    check_outputs("m:f", [1, 2], ["a", "b"])


# --------------------------------------------------------------------------- how callables are read


@pytest.mark.usefixtures("isolated_imports")
def test_batch_per_item_and_undecorated() -> None:
    assert load_model(fx("batch_fn.py", "double"))([1, 2, 3]) == [2, 4, 6]
    assert load_model(fx("batch_fn.py", "plain"))([1, 2]) == [2, 3]
    assert load_model(fx("per_item_fn.py", "square"))(np.array([2, 3])) == [4, 9]


@pytest.mark.usefixtures("isolated_imports")
def test_factory_runs_once_per_load() -> None:
    path = str(FIXTURES / "counting_factory.py")
    resolve(f"{path}:load")  # import the module first so its counters are the ones we read
    mod = sys.modules[next(n for n in sys.modules if n.startswith("_tuner_file_counting_factory_"))]
    for attr, expect in (("load", [101, 102]), ("make", [-1, -2]), ("load_item", [10, 20])):
        before = mod.CALLS[attr]
        fn = load_model(f"{path}:{attr}")
        for _ in range(5):
            assert fn([1, 2]) == expect
        assert mod.CALLS[attr] == before + 1, attr
        load_model(f"{path}:{attr}")
        assert mod.CALLS[attr] == before + 2, attr


@pytest.mark.usefixtures("isolated_imports")
def test_class_is_a_factory_of_callable_objects() -> None:
    spec = fx("counting_factory.py", "Model")
    assert load_model(spec)([1, 2]) == [3, 6]
    assert validate(spec, sample=[1, 2, 3]).kind == "factory"


def test_python_callables_are_accepted_directly() -> None:
    @per_item(inputs=lambda n, seed: list(range(n)))
    def inc(x: int) -> int:
        return x + 1

    @factory(per_item=True)
    def make() -> Any:
        return inc

    def rows(partition: Any) -> Any:
        return partition

    assert load_model(inc)([1, 2]) == [2, 3]
    assert load_model(make)([1, 2]) == [2, 3]
    assert load_model(rows)([5]) == [5]
    assert input_generator(inc) is not None
    info = validate(inc)
    assert (info.kind, info.item, info.checked) == ("per_item", "int", True)
    assert info.spec.endswith(":test_python_callables_are_accepted_directly.<locals>.inc")


def test_decorators_return_the_function_itself() -> None:
    # So decorated models still pickle by reference and can be called directly.
    def f(partition: Any) -> Any:
        return partition

    assert batch(f) is f
    assert batch(bound="io")(f) is f
    assert f([1]) == [1]
    with pytest.raises(ValueError, match="bound must be one of"):
        batch(bound="gpu")


@pytest.mark.usefixtures("isolated_imports")
def test_input_generator() -> None:
    gen = input_generator(fx("batch_fn.py", "double"))
    assert gen is not None
    assert gen(3, 10) == [10, 11, 12]
    assert input_generator(fx("batch_fn.py", "plain")) is None
    assert input_generator("builtin:mlp") is BUILTINS["mlp"].generator


@pytest.mark.usefixtures("isolated_imports")
def test_file_functions_pickle_within_the_process() -> None:
    fn = resolve(fx("batch_fn.py", "double"))
    assert pickle.loads(pickle.dumps(fn)) is fn
    # The same module object is reused for the same file.
    assert resolve(fx("batch_fn.py", "double")) is fn


@pytest.mark.usefixtures("isolated_imports")
def test_edited_file_is_reloaded(tmp_path: Path) -> None:
    path = write_module(tmp_path, "m.py", "def f(p):\n    return [1 for _ in p]\n")
    assert load_model(f"{path}:f")([0]) == [1]
    path.write_text("def f(p):\n    return [2 for _ in p]\n")
    os.utime(path, ns=(0, 10**18))  # make sure the mtime differs even on coarse clocks
    assert load_model(f"{path}:f")([0]) == [2]


@pytest.mark.usefixtures("isolated_imports")
def test_module_spec_from_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))
    write_module(tmp_path, "tuner_pkg_d/__init__.py", "")
    write_module(
        tmp_path,
        "tuner_pkg_d/serving.py",
        """
        from tuner.models import factory

        @factory
        def load():
            return lambda rows: [r * 3 for r in rows]
        """,
    )
    assert load_model("tuner_pkg_d.serving:load")([1, 2]) == [3, 6]
    assert sys.path[0] == str(tmp_path)


def _load_and_run(spec: str, partition: list[int]) -> list[int]:
    return list(load_model(spec)(partition))


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("isolated_imports")
def test_specs_load_in_a_fresh_worker_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers start with spawn/forkserver: the module must be importable from the working directory.
    monkeypatch.chdir(tmp_path)
    write_module(tmp_path, "tuner_worker_mod.py", "def predict(rows):\n    return [r + 7 for r in rows]\n")
    specs = ["tuner_worker_mod:predict", fx("per_item_fn.py", "square"), "builtin:sleep"]
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        results = [pool.submit(_load_and_run, s, [1, 2]).result(timeout=50) for s in specs]
    assert results == [[8, 9], [1, 4], [2, 4]]


# --------------------------------------------------------------------------- validate


@pytest.mark.usefixtures("isolated_imports")
def test_validate_builtin_mlp() -> None:
    info = validate("builtin:mlp")
    assert info.spec == "builtin:mlp"
    assert info.kind == "factory"
    assert info.bound == "blas"
    assert info.has_generator
    assert info.item == "float32[256]"
    assert info.checked
    assert info.load_s > 0
    assert "MLP" in info.description


@pytest.mark.usefixtures("isolated_imports")
def test_validate_wrong_count_from_generator() -> None:
    spec = fx("wrong_count.py", "drop_last")
    with pytest.raises(ModelSpecError) as e:
        validate(spec)
    assert str(e.value) == f"{spec}: returned 3 outputs for 4 inputs"


@pytest.mark.usefixtures("isolated_imports")
def test_validate_with_sample_and_without() -> None:
    spec = fx("wrong_count.py", "scalar")
    with pytest.raises(ModelSpecError) as e:
        validate(spec, sample=[{"a": 1}, {"a": 2}])
    assert str(e.value) == (
        f"{spec}: returned an int for 2 inputs; expected a list or array with one output per item"
    )
    info = validate(spec)  # no generator, no sample: loaded but not run
    assert (info.checked, info.has_generator, info.item, info.kind) == (False, False, "unknown", "batch")
    info = validate(fx("batch_fn.py", "plain"), sample=list(range(100)))
    assert (info.checked, info.item, info.description) == (
        True,
        "int",
        "Undecorated, one argument: read as a batch function.",
    )


@pytest.mark.usefixtures("isolated_imports")
def test_validate_model_raising_on_sample() -> None:
    with pytest.raises(ModelSpecError) as e:
        validate("builtin:mlp", sample=np.zeros((3, 5), dtype=np.float32))
    assert str(e.value) == (
        "builtin:mlp: raised ValueError: mlp expects rows of 256 floats, got an array of shape (3, 5) "
        "on a sample of 3 items"
    )


# --------------------------------------------------------------------------- built-in workloads


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtins_are_deterministic(name: str) -> None:
    gen = input_generator(f"builtin:{name}")
    assert gen is not None
    a, b, other = gen(16, 7), gen(16, 7), gen(16, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, other)
    out1 = load_model(f"builtin:{name}")(a)
    out2 = load_model(f"builtin:{name}")(b)
    np.testing.assert_array_equal(np.asarray(out1), np.asarray(out2))
    check_outputs(f"builtin:{name}", a, out1)


def test_builtin_registry() -> None:
    assert sorted(BUILTINS) == ["mlp", "pyloop", "sleep"]
    assert {m.name: m.bound for m in BUILTINS.values()} == {"mlp": "blas", "pyloop": "gil", "sleep": "io"}
    for name, model in BUILTINS.items():
        assert validate(f"builtin:{name}").bound == model.bound


def test_mlp_output() -> None:
    rows = BUILTINS["mlp"].generator(64, 0)
    assert rows.shape == (64, 256) and rows.dtype == np.float32
    out = load_model("builtin:mlp")(rows)
    assert isinstance(out, np.ndarray)
    assert out.shape == (64, 10) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.std() > 0
    # Rows are independent: a partition's split does not change its outputs.
    np.testing.assert_allclose(load_model("builtin:mlp")(rows[:5]), out[:5], rtol=1e-5, atol=1e-5)
    assert load_model("builtin:mlp")(rows[:0]).shape == (0, 10)


def test_pyloop_and_sleep_outputs() -> None:
    items = BUILTINS["pyloop"].generator(3, 0)
    out = load_model("builtin:pyloop")(items)
    assert [type(o) for o in out] == [int, int, int]
    assert out == load_model("builtin:pyloop")([int(i) for i in items])  # list or array, same result
    sleep = load_model("builtin:sleep")
    np.testing.assert_array_equal(sleep(np.array([1, 2, 3], dtype=np.int64)), [2, 4, 6])
    assert sleep([1, 2]) == [2, 4]


# --------------------------------------------------------------------------- import hygiene


def test_importing_tuner_models_stays_light() -> None:
    code = (
        "import sys, tuner.models, tuner.data\n"
        "heavy = {'numpy', 'rich', 'textual', 'plotext', 'yaml', 'pydantic'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_tuner_models_imports_no_other_room_of_tuner() -> None:
    # Preloaded by the engine's forkserver and imported in every worker: the spec, decorator,
    # loader and validation modules only, not the numpy-backed built-ins until a builtin: spec
    # is resolved.
    code = (
        "import sys, tuner.models\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('tuner'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    mods = set(out.stdout.split())
    strays = {m for m in mods if m not in ("tuner", "tuner.errors") and not m.startswith("tuner.models")}
    assert not strays, strays
    assert "tuner.models.builtin" not in mods


def test_package_keeps_its_public_names() -> None:
    # Code outside imports these from tuner.models; the modules behind them may move.
    import tuner.models

    names = {
        "BOUNDS", "BatchFn", "InputGen", "ModelInfo", "ModelSpec", "batch", "check_outputs", "factory",
        "input_generator", "load_model", "parse_spec", "per_item", "resolve", "spec_text", "validate",
    }  # fmt: skip
    assert set(tuner.models.__all__) == names
    assert all(hasattr(tuner.models, name) for name in names)
    assert callable(tuner.models.validate)  # the function, not a module of the same name


def test_model_spec_is_frozen() -> None:
    ms = ModelSpec("builtin:mlp", "builtin", "mlp", "mlp")
    with pytest.raises(AttributeError):
        ms.kind = "file"  # type: ignore[misc]
