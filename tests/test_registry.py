import sys

import pytest

from tests.conftest import write_plugin
from vfbench import registry
from vfbench.errors import UserError
from vfbench.registry import Method, compose, expand_methods, get_method, list_methods, register_method


def test_baseline_is_registered():
    assert "joint" in list_methods() and "full" in list_methods()
    assert get_method("joint").axis == "attention"


def test_unknown_method_lists_closest():
    with pytest.raises(UserError, match="did you mean 'joint'"):
        get_method("jiont")


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        @register_method
        class Again(Method):
            name = "joint"
            axis = "attention"


def test_glob_listing():
    assert list_methods("jo*") == ["joint"]
    assert list_methods("zzz*") == []


def test_parameters_defaults_and_type_checks():
    @register_method
    class Knob(Method):
        name = "knob_test"
        axis = "runtime"
        params = {"ratio": 0.5, "mode": "a"}

    try:
        assert get_method("knob_test").label == "knob_test(mode=a,ratio=0.5)"
        assert get_method("knob_test(ratio=1)").p["ratio"] == 1.0
        with pytest.raises(UserError, match="no parameter 'rato'.*ratio"):
            get_method("knob_test(rato=0.1)")
        with pytest.raises(UserError, match="should be float"):
            get_method("knob_test(ratio=fast)")
        assert compose("joint+knob_test").label == "knob_test(mode=a,ratio=0.5)"
        with pytest.raises(UserError, match="conflicting"):
            compose("knob_test(ratio=0.1)+knob_test(ratio=0.2)")
    finally:
        registry.unregister("knob_test")


def test_composition_fills_baseline_and_labels_canonically():
    c = compose("joint")
    assert [m.name for m in c.methods] == ["joint", "full"] and c.label == "joint"
    assert compose("full + joint").label == "joint"


def test_all_expands_to_every_method_and_recipe():
    labels = [c.label for c in expand_methods("all")]
    assert "joint" in labels
    for name in registry.recipes():
        assert name in labels


def test_entry_point_registration(tmp_path, monkeypatch):
    """A third party's package registers a method through the vfbench.methods entry-point group."""
    write_plugin(tmp_path, "thirdparty_vf", "thirdparty_mine")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded", False)
    try:
        assert "thirdparty_mine" in list_methods()
        assert compose("thirdparty_mine").label == "thirdparty_mine"
    finally:
        registry.unregister("thirdparty_mine")
        sys.modules.pop("thirdparty_vf", None)
