"""Slow end-to-end tests of S2KANRegressor: two layers, a target outside the dictionary, the relaxation."""

import numpy as np
import pytest
import scipy.special
import sympy as sp

from s2kan_dyn.model.train import GateSchedule
from s2kan_dyn.regression import S2KANRegressor


@pytest.fixture(scope="module")
def bessel():
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 10.0, (256, 1))
    model = S2KANRegressor(time_limit=30.0).fit(X, scipy.special.j0(X[:, 0]))
    return model, rng.uniform(0.0, 10.0, (1000, 1))


@pytest.mark.slow
def test_bessel_keeps_dense_edge(bessel):
    model, X_test = bessel
    assert model.score(X_test, scipy.special.j0(X_test[:, 0])) >= 0.999
    assert model.dense_edges_ == ["dense_l0_0_0"]
    assert not model.exact_
    calls = model.sympy().atoms(sp.core.function.AppliedUndef)
    assert [str(c) for c in calls] == ["dense_l0_0_0(x0)"]
    assert np.isfinite(model.predict(np.array([[0.0], [10.0]]))).all()


@pytest.mark.slow
def test_dense_edge_saved_and_loaded(bessel, tmp_path):
    model, X_test = bessel
    loaded = S2KANRegressor.load(model.save(tmp_path / "bessel.s2kan"))
    assert loaded.sympy() == model.sympy()
    assert loaded.dense_edges_ == model.dense_edges_
    assert np.array_equal(loaded.predict(X_test), model.predict(X_test))


@pytest.mark.slow
def test_dense_edge_without_its_spline_rejected(bessel, tmp_path):
    import json
    import zipfile

    from s2kan_dyn.errors import ModelFileError
    from s2kan_dyn.persistence import MANIFEST, MANIFEST_DIGEST, TENSORS, manifest_digest

    model, _ = bessel
    path = model.save(tmp_path / "bessel.s2kan")
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read(MANIFEST))
        blob = archive.read(TENSORS)
    manifest["spline"] = None
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        archive.writestr(TENSORS, blob)
    with pytest.raises(ModelFileError, match="stores no spline or network"):
        S2KANRegressor.load(path)


@pytest.mark.slow
def test_relax_search_fits():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.0, 1.0, (256, 2))
    y = 2.0 * X[:, 0] + X[:, 1] ** 2
    schedule = GateSchedule(warmup=60, ramp=100, freeze=60, polish=60)
    model = S2KANRegressor(search="relax", relax_schedule=schedule, spline_grid=None).fit(X, y)
    assert model.search_ == "relax"
    assert model.structure_ == "relax"
    assert model.score(X, y) >= 0.999
    assert np.isfinite(model.predict(X)).all()


@pytest.mark.slow
def test_relaxed_network_with_open_spline_saved_and_loaded(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 10.0, (256, 1))
    schedule = GateSchedule(warmup=60, ramp=100, freeze=60, polish=60)
    model = S2KANRegressor(search="relax", relax_schedule=schedule, relax_hidden=1).fit(X, scipy.special.j0(X[:, 0]))
    assert model.dense_edges_
    loaded = S2KANRegressor.load(model.save(tmp_path / "relaxed.s2kan"))
    assert loaded.sympy() == model.sympy()
    assert np.array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.slow
def test_two_layer_recovers_sine_of_square():
    rng = np.random.default_rng(2)
    X = rng.uniform(-1.0, 1.0, (256, 2))
    y = np.sin(X[:, 0]) + np.sin(X[:, 1] ** 2)
    model = S2KANRegressor(time_limit=40.0).fit(X, y)
    x0, x1 = model.symbols_
    assert model.structure_ == "two-layer"
    assert model.exact_
    assert sp.simplify(model.sympy() - (sp.sin(x0) + sp.sin(x1**2))) == 0
    assert {e.layer for e in model.edges_} == {0, 1}
