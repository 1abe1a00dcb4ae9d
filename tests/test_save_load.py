"""SymbolicODE.save / load and the JSON equation trees behind them."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import sympy as sp
import torch

from s2kan_dyn.discovery import SymbolicODE
from s2kan_dyn.errors import FitError, ModelFileError
from s2kan_dyn.expression_json import from_json, to_json
from s2kan_dyn.model.network import S2KAN
from s2kan_dyn.persistence import MANIFEST, MANIFEST_DIGEST, TENSORS, manifest_digest

X, Y = sp.symbols("x y")
XR = sp.Symbol("x", real=True)


def built_model() -> SymbolicODE:
    """A SymbolicODE with fitted attributes set by hand: a seeded network and Lotka-Volterra equations."""
    model = SymbolicODE(progress=False, random_state=3)
    network = S2KAN([2, [2, 2], 2], primitives=("x", "sin"), spline=True, seed=0)
    network.set_scaling(torch.tensor([2.0, 3.0]), torch.tensor([0.5, 0.25]))
    network.freeze_gates()
    network.eval()
    model.state_names_ = ("x", "y")
    model.equations_ = {
        "x": sp.Float(1.0999999999837073) * X - sp.Rational(2, 5) * X * Y,
        "y": sp.Float("0.10000000000744326") * X * Y - sp.Rational(2, 5) * Y,
    }
    model.dense_terms_ = []
    model.network_ = network
    model.report_ = {"noise": float("nan"), "states": ["x", "y"]}
    return model


@pytest.fixture
def saved(tmp_path):
    model = built_model()
    path = tmp_path / "model.s2kan"
    model.save(path)
    return model, path


def _rewrite_manifest(path, change, resign=True):
    """Edit the manifest; ``resign`` recomputes its digest, as a deliberate forger would."""
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(MANIFEST))
        blob = archive.read(TENSORS)
    change(manifest)
    if resign:
        manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        archive.writestr(TENSORS, blob)


@pytest.mark.parametrize(
    "expr",
    [
        sp.Integer(-7),
        sp.Rational(-2, 5),
        sp.Float(0.1),
        sp.Float("1.234567890123456789012345", 25),
        sp.pi * X + sp.E,
        XR**2 * Y - 3 * XR / Y,
        sp.sin(X / 3 + sp.pi) + sp.cos(Y) + sp.tanh(X) + sp.exp(-(X**2)),
        sp.log(sp.Abs(X)) + sp.sqrt(sp.Abs(Y)),
        2 * sp.Function("dense_l0_1_2")(X),
    ],
)
def test_expression_round_trip(expr):
    back = from_json(json.loads(json.dumps(to_json(expr))))
    assert back == expr
    assert sp.srepr(back) == sp.srepr(expr)


def test_float_keeps_every_bit():
    value = sp.Float(1.0999999999837073)
    back = from_json(to_json(value))
    assert back._mpf_ == value._mpf_
    assert back._prec == value._prec


def test_real_symbol_kept():
    back = from_json(to_json(XR))
    assert back.is_real is True
    assert from_json(to_json(X)).is_real is None


@pytest.mark.parametrize("expr", [sp.sinh(X), X + sp.I, sp.Function("evil")(X), sp.oo * X, sp.Derivative(X**2, X)])
def test_expression_outside_whitelist_rejected(expr):
    with pytest.raises(ModelFileError, match="not storable"):
        to_json(expr)


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"type": "__import__", "args": [{"type": "Integer", "value": "1"}]}, "not allowed"),
        ({"type": "Symbol", "name": "__import__('os').system('true')"}, "symbol name"),
        ({"type": "Integer", "value": "1e5"}, "not a decimal string"),
        ({"type": "Integer", "value": 7}, "not a decimal string"),
        ({"type": "Float", "value": "nan", "precision": 53}, "not a decimal number"),
        ({"type": "Float", "value": "1.0", "precision": 10**6}, "precision"),
        ({"type": "Rational", "p": "1", "q": "0"}, "denominator 0"),
        ({"type": "Pow", "args": [{"type": "pi"}]}, "expected 2"),
        ({"type": "dense", "name": "os.system", "args": [{"type": "pi"}]}, "dense function name"),
        ("x + y", "not an object"),
        ({"type": "Add"}, "no argument list"),
    ],
)
def test_bad_tree_rejected(tree, message):
    with pytest.raises(ModelFileError, match=message):
        from_json(tree)


def test_deep_tree_rejected():
    tree = {"type": "pi"}
    for _ in range(100):
        tree = {"type": "sin", "args": [tree]}
    with pytest.raises(ModelFileError, match="deeper than"):
        from_json(tree)


def test_load_equations_identical(saved):
    model, path = saved
    loaded = SymbolicODE.load(path)
    assert loaded.equations() == model.equations()
    assert loaded.state_names_ == model.state_names_
    assert loaded.dense_terms_ == model.dense_terms_


def test_load_settings_identical(saved):
    model, path = saved
    loaded = SymbolicODE.load(path)
    assert loaded.get_params() == model.get_params()


def test_load_report_keeps_nan(saved):
    _, path = saved
    loaded = SymbolicODE.load(path)
    assert np.isnan(loaded.report_["noise"])
    assert loaded.report_["states"] == ["x", "y"]


def test_load_predict_identical(saved):
    model, path = saved
    loaded = SymbolicODE.load(path)
    states = np.array([[1.0, 2.0], [3.0, 0.5], [10.0, 5.0]])
    assert np.array_equal(loaded.predict(states), model.predict(states))


def test_load_simulate_identical(saved):
    model, path = saved
    loaded = SymbolicODE.load(path)
    t = np.linspace(0, 5, 51)
    assert np.array_equal(loaded.simulate([10.0, 5.0], t), model.simulate([10.0, 5.0], t))
    assert np.array_equal(
        loaded.simulate([1.0, 0.5], t, use_network=True),
        model.simulate([1.0, 0.5], t, use_network=True),
        equal_nan=True,
    )


def test_load_network_tensors_identical(saved):
    model, path = saved
    loaded = SymbolicODE.load(path)
    original = model.network_.state_dict()
    for name, value in loaded.network_.state_dict().items():
        assert torch.equal(torch.nan_to_num(value, nan=-7.0), torch.nan_to_num(original[name], nan=-7.0)), name
    assert not loaded.network_.training


def test_load_without_network(tmp_path):
    model = built_model()
    model.network_ = None
    model.save(tmp_path / "m.s2kan")
    loaded = SymbolicODE.load(tmp_path / "m.s2kan")
    assert loaded.network_ is None
    with pytest.raises(FitError, match="no network"):
        loaded.simulate([1.0, 1.0], np.linspace(0, 1, 5), use_network=True)


def test_save_unfitted_rejected(tmp_path):
    with pytest.raises(FitError, match="not fitted"):
        SymbolicODE().save(tmp_path / "m.s2kan")
    assert not (tmp_path / "m.s2kan").exists()


def test_load_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        SymbolicODE.load(tmp_path / "absent.s2kan")


def test_load_truncated_file(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a readable"):
        SymbolicODE.load(path)


def test_load_foreign_file(tmp_path):
    path = tmp_path / "data.s2kan"
    np.savez(path.with_suffix(".npz"), t_0=np.arange(3.0))
    path.write_bytes(path.with_suffix(".npz").read_bytes())
    with pytest.raises(ModelFileError, match="not an s2kan-dyn model file"):
        SymbolicODE.load(path)


def test_load_tampered_tensors(saved):
    _, path = saved
    with zipfile.ZipFile(path) as archive:
        manifest = archive.read(MANIFEST)
        blob = bytearray(archive.read(TENSORS))
    blob[-1] ^= 0xFF
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, manifest)
        archive.writestr(TENSORS, bytes(blob))
    with pytest.raises(ModelFileError, match="digest"):
        SymbolicODE.load(path)


def test_load_edited_coefficient_rejected(saved):
    _, path = saved

    def first_float(node):
        if node.get("type") == "Float":
            return node
        return next(filter(None, (first_float(child) for child in node.get("args", []))), None)

    def change(manifest):
        first_float(manifest["equations"]["x"])["value"] = "2.0"

    _rewrite_manifest(path, change, resign=False)
    with pytest.raises(ModelFileError, match="manifest does not match its recorded digest"):
        SymbolicODE.load(path)


def test_load_string_equation_rejected(saved):
    _, path = saved

    def change(manifest):
        manifest["equations"]["x"] = "__import__('os').system('false')"

    _rewrite_manifest(path, change)
    with pytest.raises(ModelFileError, match="not an object"):
        SymbolicODE.load(path)


def test_load_unknown_setting_rejected(saved):
    _, path = saved

    def change(manifest):
        manifest["settings"]["__class__"] = "os"

    _rewrite_manifest(path, change)
    with pytest.raises(ModelFileError, match="unknown"):
        SymbolicODE.load(path)


def test_load_network_mismatch_rejected(saved):
    _, path = saved

    def change(manifest):
        manifest["network"]["widths"] = [2, [3, 2], 2]

    _rewrite_manifest(path, change)
    with pytest.raises(ModelFileError, match="do not fit"):
        SymbolicODE.load(path)


def test_load_other_version_rejected(saved):
    _, path = saved

    def change(manifest):
        manifest["format_version"] = 999

    _rewrite_manifest(path, change)
    with pytest.raises(ModelFileError, match="version 999"):
        SymbolicODE.load(path)


def test_load_foreign_state_symbol_rejected(saved):
    _, path = saved

    def change(manifest):
        manifest["equations"]["y"] = {"type": "Symbol", "name": "z"}

    _rewrite_manifest(path, change)
    with pytest.raises(ModelFileError, match="not states"):
        SymbolicODE.load(path)


# The child process loads the model and prints its equations, derivatives and
# rollouts; floats go through repr() so that the comparison is exact.
CHILD = """
import json, sys
import numpy as np
from s2kan_dyn.discovery import SymbolicODE
model = SymbolicODE.load(sys.argv[1])
states = np.array(json.loads(sys.argv[2]))
t = np.linspace(0, float(sys.argv[3]), 41)
out = {
    "equations": {k: __import__("sympy").srepr(v) for k, v in model.equations().items()},
    "predict": [[repr(v) for v in row] for row in model.predict(states)],
    "simulate": [[repr(v) for v in row] for row in model.simulate(states[0], t)],
    "network": [[repr(v) for v in row] for row in model.simulate(states[0], t, use_network=True)]
    if model.network_ is not None else None,
}
print(json.dumps(out))
"""


def _in_fresh_process(path, states, t_end):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), json.dumps(states), str(t_end)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    return json.loads(done.stdout)


def _same_process(model, states, t_end):
    states = np.array(states)
    t = np.linspace(0, t_end, 41)
    return {
        "equations": {k: sp.srepr(v) for k, v in model.equations().items()},
        "predict": [[repr(v) for v in row] for row in model.predict(states)],
        "simulate": [[repr(v) for v in row] for row in model.simulate(states[0], t)],
        "network": [[repr(v) for v in row] for row in model.simulate(states[0], t, use_network=True)],
    }


def test_fresh_process_identical(saved):
    model, path = saved
    states = [[1.0, 0.5], [3.0, 2.0]]
    child = _in_fresh_process(path, states, 2.0)
    here = _same_process(model, states, 2.0)
    assert child["equations"] == here["equations"]
    assert child["predict"] == here["predict"]
    assert child["simulate"] == here["simulate"]
    assert child["network"] == here["network"]


@pytest.mark.slow
def test_fitted_model_fresh_process(tmp_path):
    import systems
    from s2kan_dyn.model.train import GateSchedule

    trajectories = systems.get("lotka_volterra").simulate(t_end=5)
    model = SymbolicODE(
        stages=("derivative",), schedule=GateSchedule(20, 20, 20, 20), dictionary=(("x",),),
        self_check=False, progress=False,
    ).fit(trajectories)
    path = model.save(tmp_path / "lv.s2kan")
    states = trajectories[0].x[:3].tolist()
    child = _in_fresh_process(path, states, 3.0)
    here = _same_process(model, states, 3.0)
    assert child["equations"] == here["equations"]
    assert child["predict"] == here["predict"]
    assert child["simulate"] == here["simulate"]
    assert child["network"] == here["network"]


@pytest.fixture(scope="module")
def regressor():
    from s2kan_dyn.regression.estimator import S2KANRegressor

    X = np.random.default_rng(0).uniform(-2, 2, (100, 2))
    return S2KANRegressor(time_limit=30).fit(X, 2.5 * X[:, 0] ** 2 - X[:, 1]), X


def test_regressor_round_trip(tmp_path, regressor):
    from s2kan_dyn.regression.estimator import S2KANRegressor

    model, X = regressor
    model.save(tmp_path / "r.s2kan")
    loaded = S2KANRegressor.load(tmp_path / "r.s2kan")
    assert loaded.sympy() == model.sympy()
    assert loaded.get_params() == model.get_params()
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.exact_ == model.exact_
    assert loaded.edges_ == model.edges_


def test_regressor_file_is_not_symbolic_ode(tmp_path, regressor):
    model, _ = regressor
    model.save(tmp_path / "r.s2kan")
    with pytest.raises(ModelFileError, match="S2KANRegressor"):
        SymbolicODE.load(tmp_path / "r.s2kan")


def test_regressor_foreign_symbol_rejected(tmp_path, regressor):
    from s2kan_dyn.regression.estimator import S2KANRegressor

    model, _ = regressor
    path = tmp_path / "r.s2kan"
    model.save(path)

    def change(manifest):
        manifest["expression"] = {"type": "Symbol", "name": "x7"}

    _rewrite_manifest(path, change)
    with pytest.raises(ModelFileError, match="beyond its 2 inputs"):
        S2KANRegressor.load(path)
