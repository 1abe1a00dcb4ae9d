"""Model files: round trip, and rejection of damaged, foreign or crafted files."""

import json
import pickle
import zipfile

import pytest
import torch

from s2kan_dyn.errors import ModelFileError
from s2kan_dyn.persistence import (
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_DIGEST,
    TENSORS,
    load_model_file,
    manifest_digest,
    save_model_file,
)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.s2kan"
    tensors = {"coef": torch.arange(6, dtype=torch.float64).reshape(3, 2), "mask": torch.tensor([True, False])}
    save_model_file(path, "SymbolicODE", {"state_names": ["x", "y"]}, tensors)
    return path, tensors


def _rewrite(path, manifest=None, blob=None, resign=True):
    """Replace the members; ``resign`` recomputes the manifest digest, as a deliberate forger would."""
    with zipfile.ZipFile(path) as archive:
        old_manifest = json.loads(archive.read(MANIFEST))
        old_blob = archive.read(TENSORS)
    new_manifest = dict(manifest if manifest is not None else old_manifest)
    if resign and MANIFEST_DIGEST in new_manifest:
        new_manifest[MANIFEST_DIGEST] = manifest_digest(new_manifest)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(new_manifest))
        archive.writestr(TENSORS, blob if blob is not None else old_blob)
    return old_manifest


def test_round_trip_exact(saved):
    path, tensors = saved
    manifest, loaded = load_model_file(path, "SymbolicODE")
    assert manifest["state_names"] == ["x", "y"]
    assert manifest["format_version"] == FORMAT_VERSION
    assert torch.equal(loaded["coef"], tensors["coef"])
    assert torch.equal(loaded["mask"], tensors["mask"])


def test_no_temporary_file_left(saved):
    path, _ = saved
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.s2kan"]


def test_random_bytes_rejected(tmp_path):
    path = tmp_path / "random.s2kan"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model_file(path, "SymbolicODE")


def test_truncated_file_rejected(saved):
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        load_model_file(path, "SymbolicODE")


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model_file(tmp_path / "absent.s2kan", "SymbolicODE")


def test_wrong_format_version_rejected(saved):
    path, _ = saved
    manifest = _rewrite(path)
    manifest["format_version"] = 99
    _rewrite(path, manifest=manifest)
    with pytest.raises(ModelFileError, match="version 99"):
        load_model_file(path, "SymbolicODE")


def test_wrong_class_rejected(saved):
    path, _ = saved
    with pytest.raises(ModelFileError, match="S2KANRegressor"):
        load_model_file(path, "S2KANRegressor")


def test_foreign_manifest_rejected(saved):
    path, _ = saved
    _rewrite(path, manifest={"hello": "world"})
    with pytest.raises(ModelFileError, match="not an s2kan-dyn model file"):
        load_model_file(path, "SymbolicODE")


def test_declared_shape_mismatch_rejected(saved):
    path, _ = saved
    manifest = _rewrite(path)
    manifest["tensors"]["coef"]["shape"] = [2, 3]
    _rewrite(path, manifest=manifest)
    with pytest.raises(ModelFileError, match="shape"):
        load_model_file(path, "SymbolicODE")


def test_edited_manifest_rejected(saved):
    path, _ = saved
    manifest = _rewrite(path)
    manifest["state_names"] = ["x", "z"]
    _rewrite(path, manifest=manifest, resign=False)
    with pytest.raises(ModelFileError, match="manifest does not match its recorded digest"):
        load_model_file(path, "SymbolicODE")


def test_manifest_with_nan_rejected(saved):
    path, _ = saved
    manifest = _rewrite(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, json.dumps({**manifest, "state_names": [float("nan")]}))
        archive.writestr(TENSORS, b"")
    with pytest.raises(ModelFileError, match="digest"):
        load_model_file(path, "SymbolicODE")


def test_edited_tensors_rejected(saved):
    path, _ = saved
    from safetensors.torch import save

    _rewrite(path, blob=save({"coef": torch.zeros(3, 2, dtype=torch.float64), "mask": torch.tensor([True, True])}))
    with pytest.raises(ModelFileError, match="digest"):
        load_model_file(path, "SymbolicODE")


def test_pickle_payload_not_executed(tmp_path):
    marker = tmp_path / "ran.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.s2kan"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, json.dumps({"format": "s2kan-dyn-model"}))
        archive.writestr(TENSORS, pickle.dumps(Payload()))
    with pytest.raises(ModelFileError):
        load_model_file(path, "SymbolicODE")
    assert not marker.exists()


def test_torch_save_file_rejected(tmp_path):
    marker = tmp_path / "ran.txt"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "torch.s2kan"
    torch.save({"x": Payload()}, path)
    with pytest.raises(ModelFileError):
        load_model_file(path, "SymbolicODE")
    assert not marker.exists()


def test_deeply_nested_manifest_rejected(saved):
    path, _ = saved
    with zipfile.ZipFile(path) as archive:
        blob = archive.read(TENSORS)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, "[" * 200_000 + "]" * 200_000)
        archive.writestr(TENSORS, blob)
    with pytest.raises(ModelFileError, match="nested too deeply"):
        load_model_file(path, "SymbolicODE")


def test_huge_power_rejected_quickly():
    from s2kan_dyn.expression_json import from_json

    tree = {"type": "Pow", "args": [{"type": "Integer", "value": "10"}, {"type": "Integer", "value": "9999999999"}]}
    with pytest.raises(ModelFileError, match="exponent"):
        from_json(tree)


def test_foreign_class_not_echoed(tmp_path):
    path = tmp_path / "pickle.s2kan"
    save_model_file(path, "Pickle", {}, {})
    with pytest.raises(ModelFileError) as info:
        load_model_file(path, "SymbolicODE")
    message = str(info.value)
    assert "Pickle.load()" not in message
    assert "is not a model of this package" in message
    assert "give a file of class SymbolicODE written by s2kan-dyn" in message


def test_known_class_loader_named(saved):
    path, _ = saved
    with pytest.raises(ModelFileError, match=r"contains a SymbolicODE model, not the S2KANRegressor asked for; load it with SymbolicODE\.load\(\)"):
        load_model_file(path, "S2KANRegressor")


def test_bad_equation_tree_names_file(tmp_path):
    from s2kan_dyn.discovery import SymbolicODE
    from test_save_load import built_model

    path = tmp_path / "model.s2kan"
    built_model().save(path)
    manifest = _rewrite(path)
    manifest["equations"]["x"] = {"type": "nonsense"}
    _rewrite(path, manifest=manifest)
    with pytest.raises(ModelFileError) as info:
        SymbolicODE.load(path)
    assert str(info.value).startswith(f"{path}: ")


def test_bad_settings_name_file(tmp_path):
    from s2kan_dyn.discovery import SymbolicODE
    from test_save_load import built_model

    path = tmp_path / "model.s2kan"
    built_model().save(path)
    manifest = _rewrite(path)
    manifest["settings"] = {"no_such_setting": 1}
    _rewrite(path, manifest=manifest)
    with pytest.raises(ModelFileError, match="unknown to this estimator") as info:
        SymbolicODE.load(path)
    assert str(info.value).startswith(f"{path}: ")
