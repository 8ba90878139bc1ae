"""save/load: exact round trips, rebuilt models, and refusal of pickled,
foreign or malformed files."""
import json
import pickle
import zipfile

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import ShapeError, StateError
from symgrad.io import META_KEY


def _same_bits(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes() for k in a)


def test_mlp_round_trip_is_bitwise_and_rebuilds_the_model(tmp_path):
    model = sg.nn.MLP([5, 7, 3], activation="tanh", output_activation="sigmoid", init="orthogonal",
                      seed=3, name="net")
    model.layers[0].b.value = np.random.default_rng(0).normal(size=7) * 1e-300  # tiny values survive too
    path = tmp_path / "net.npz"
    assert sg.save(path, model) == str(path)
    again = sg.load(path)
    assert isinstance(again, sg.nn.MLP) and again is not model
    assert again.sizes == [5, 7, 3] and again.activation == "tanh" and again.output_activation == "sigmoid"
    assert again.name == "net" and again.config() == model.config()
    assert _same_bits(again.state_dict(), model.state_dict())
    X = np.random.default_rng(1).normal(size=(4, 5))
    x = sg.var("X", shape=("batch", 5))
    assert sg.evaluate(again(x), {"X": X}).tobytes() == sg.evaluate(model(x), {"X": X}).tobytes()


def test_file_is_plain_npz_with_json_metadata(tmp_path):
    model = sg.nn.Linear(3, 2, bias=False, name="fc", seed=0)
    path = tmp_path / "fc.npz"
    sg.save(path, model)
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted([META_KEY, "fc.W"])
        meta = json.loads(str(npz[META_KEY]))
        assert np.array_equal(npz["fc.W"], model.W.value)
    assert meta["class"] == "Linear" and meta["names"] == ["fc.W"] and meta["shapes"] == [[3, 2]]
    assert meta["config"]["bias"] is False
    again = sg.load(path)
    assert isinstance(again, sg.nn.Linear) and again.b is None
    assert again.W.value.tobytes() == model.W.value.tobytes()
    assert [p.name for p in tmp_path.iterdir()] == ["fc.npz"]  # no temp file left behind


def test_generic_module_and_dict_load_as_state(tmp_path):
    class Scale(sg.nn.Module):
        def __init__(self):
            super().__init__("scale")
            self.s = self.param("s", [1.5, -2.0])

        def forward(self, x):
            return x * self.s

    m = Scale()
    sg.save(tmp_path / "scale.npz", m)
    state = sg.load(tmp_path / "scale.npz")
    assert isinstance(state, dict) and _same_bits(state, m.state_dict())
    other = Scale()
    other.s.value = [0.0, 0.0]
    assert sg.load(tmp_path / "scale.npz", into=other) is other
    assert np.array_equal(other.s.value, [1.5, -2.0])

    sg.save(tmp_path / "d.npz", {"w": np.arange(4.0).reshape(2, 2), "layer.b": np.array(3.0)})
    loaded = sg.load(tmp_path / "d.npz")
    assert list(loaded) == ["w", "layer.b"] and loaded["layer.b"].shape == ()


def test_overwrite_is_atomic_replace(tmp_path):
    path = tmp_path / "m.npz"
    sg.save(path, sg.nn.MLP([2, 2], seed=0))
    newer = sg.nn.MLP([2, 3, 2], seed=1)
    sg.save(path, newer)
    assert sg.load(path).sizes == [2, 3, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_load_into_checks_fit(tmp_path):
    sg.save(tmp_path / "m.npz", sg.nn.MLP([4, 3, 2], seed=0))
    with pytest.raises(ShapeError, match="mlp.0.W"):
        sg.load(tmp_path / "m.npz", into=sg.nn.MLP([4, 5, 2]))
    with pytest.raises(StateError, match="missing"):
        sg.load(tmp_path / "m.npz", into=sg.nn.MLP([4, 3, 2], name="other"))


def test_save_refuses_bad_input(tmp_path):
    with pytest.raises(StateError, match="not a valid parameter name"):
        sg.save(tmp_path / "x.npz", {"../evil": np.zeros(2)})
    with pytest.raises(StateError, match="non-numeric"):
        sg.save(tmp_path / "x.npz", {"w": np.array(["a"])})
    with pytest.raises(StateError, match="Module or a dict"):
        sg.save(tmp_path / "x.npz", [1, 2])
    assert not any(tmp_path.iterdir())


def _write_npz(path, entries: dict, pickled: bool = False):
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in entries.items():
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, np.asarray(arr), allow_pickle=pickled)


def _meta(**over):
    meta = {"format": "symgrad.params", "version": 1, "class": None, "config": None,
            "names": ["w"], "shapes": [[2]]}
    meta.update(over)
    return np.array(json.dumps(meta))


@pytest.mark.parametrize("case, match", [
    ("pickle", "never unpickles"),
    ("object_array", "without pickle"),
    ("text", "cannot be read"),
    ("npy", "single array"),
    ("no_meta", "no 'symgrad-meta'"),
    ("meta_not_json", "not valid JSON"),
    ("meta_not_string", "not a JSON string"),
    ("wrong_format", "does not declare format"),
    ("future_version", "version 2"),
    ("names_mismatch", "do not match the recorded names"),
    ("shape_mismatch", "the metadata says"),
    ("unknown_class", "unknown model class 'os.system'"),
    ("config_mismatch", "parameter values"),
    ("bad_config", "does not build a model"),
])
def test_load_refuses_malformed_files(tmp_path, case, match):
    path = tmp_path / "bad.npz"
    w = np.zeros(2)
    if case == "pickle":
        path.write_bytes(pickle.dumps({"w": w}))
    elif case == "object_array":
        _write_npz(path, {META_KEY: _meta(), "w": np.array([{"a": 1}, None], dtype=object)}, pickled=True)
    elif case == "text":
        path.write_text("hello")
    elif case == "npy":
        with open(path, "wb") as f:
            np.save(f, w)
    elif case == "no_meta":
        _write_npz(path, {"w": w})
    elif case == "meta_not_json":
        _write_npz(path, {META_KEY: np.array("{not json"), "w": w})
    elif case == "meta_not_string":
        _write_npz(path, {META_KEY: np.zeros(3), "w": w})
    elif case == "wrong_format":
        _write_npz(path, {META_KEY: _meta(format="other"), "w": w})
    elif case == "future_version":
        _write_npz(path, {META_KEY: _meta(version=2), "w": w})
    elif case == "names_mismatch":
        _write_npz(path, {META_KEY: _meta(names=["v"]), "w": w})
    elif case == "shape_mismatch":
        _write_npz(path, {META_KEY: _meta(shapes=[[3]]), "w": w})
    elif case == "unknown_class":
        _write_npz(path, {META_KEY: _meta(**{"class": "os.system", "config": {}}), "w": w})
    elif case == "config_mismatch":  # a config implying a huge model is refused before building
        cfg = {"sizes": [100000, 100000], "activation": "relu", "init": "he", "seed": None, "name": "mlp",
               "output_activation": None, "bias": True}
        _write_npz(path, {META_KEY: _meta(**{"class": "MLP", "config": cfg}), "w": w})
    elif case == "bad_config":
        cfg = {"sizes": [1, 1], "activation": "__import__", "name": "mlp"}
        _write_npz(path, {META_KEY: _meta(**{"class": "MLP", "config": cfg}), "w": w})
    with pytest.raises(StateError, match=match):
        sg.load(path)


def test_load_missing_file_is_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        sg.load(tmp_path / "nothing.npz")


def test_save_writes_no_pickle(tmp_path):
    path = tmp_path / "m.npz"
    sg.save(path, sg.nn.MLP([3, 2], seed=0))
    with np.load(path, allow_pickle=False) as npz:  # any object entry would raise here
        kinds = {name: npz[name].dtype.kind for name in npz.files}
    assert kinds == {META_KEY: "U", "mlp.0.W": "f", "mlp.0.b": "f"}
