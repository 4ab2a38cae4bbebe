import pytest
from hypothesis import given, strategies as st

from vfbench.errors import UserError
from vfbench.spec import CellSpec, MethodCall, parse_frames, parse_method_call, parse_size, split_top_level


def test_doubling_range():
    assert parse_frames("16..256") == (16, 32, 64, 128, 256)
    assert parse_frames("16..100") == (16, 32, 64)


def test_step_range_and_list():
    assert parse_frames("16..64:16") == (16, 32, 48, 64)
    assert parse_frames("8, 32,16,8") == (8, 16, 32)
    assert parse_frames("4..16,24") == (4, 8, 16, 24)
    assert parse_frames(12) == (12,)


@pytest.mark.parametrize("bad", ["", "0", "-4", "16..8", "abc", "4.5", "16..", "..16", "4..16:0", "0..16", "1e3"])
def test_bad_frames_are_user_errors(bad):
    with pytest.raises(UserError, match="accepted"):
        parse_frames(bad)


@given(st.integers(1, 2000), st.integers(0, 2000))
def test_doubling_range_properties(lo, span):
    hi = lo + span
    out = parse_frames(f"{lo}..{hi}")
    assert out[0] == lo and out[-1] <= hi and out[-1] * 2 > hi
    assert all(b == 2 * a for a, b in zip(out, out[1:]))


@given(st.integers(1, 500), st.integers(0, 500), st.integers(1, 50))
def test_step_range_properties(lo, span, step):
    out = parse_frames(f"{lo}..{lo + span}:{step}")
    assert out == tuple(range(lo, lo + span + 1, step))


@given(st.text(max_size=20))
def test_frames_parser_never_crashes(text):
    try:
        out = parse_frames(text)
    except UserError:
        return
    assert out and all(isinstance(t, int) and t > 0 for t in out) and list(out) == sorted(set(out))


def test_method_call_parsing():
    c = parse_method_call("lora(rank=8, alpha=16.0)")
    assert c == MethodCall("lora", (("alpha", 16.0), ("rank", 8)))
    assert c.label == "lora(alpha=16.0,rank=8)"
    assert parse_method_call("attn_kernel(kind=math)").params == (("kind", "math"),)
    assert parse_method_call("joint").label == "joint"


@pytest.mark.parametrize(
    "bad", ["__import__('os').system('true')", "mask(0.5)", "mask(ratio=1+1)", "mask(**x)", "a.b", "", "mask(ratio=open)()"]
)
def test_method_strings_are_never_evaluated(bad):
    with pytest.raises(UserError):
        parse_method_call(bad)


@given(st.text(max_size=30))
def test_method_parser_only_user_errors(text):
    try:
        call = parse_method_call(text)
    except UserError:
        return
    assert call.name.isidentifier()
    assert parse_method_call(call.label) == call  # the label parses back to the same call


def test_list_parameters_round_trip():
    call = parse_method_call("tubes(sizes=[1, 2], name=x)")
    assert call.params == (("name", "x"), ("sizes", (1, 2)))
    assert parse_method_call(call.label) == call


def test_split_top_level_respects_parentheses():
    assert split_top_level("a(x=1,y=2),b+c(z=[1,2])", ",") == ["a(x=1,y=2)", "b+c(z=[1,2])"]


def test_sizes_binary_and_decimal():
    assert parse_size("16GiB")[0] == 16 * 2**30
    assert parse_size("16GB")[0] == 16 * 10**9
    assert "binary" in parse_size("16GiB")[1] and "decimal" in parse_size("16gb")[1]
    with pytest.raises(UserError):
        parse_size("16")


def test_cell_round_trip_and_stable_key(tiny_cell):
    cell = tiny_cell(frames=8)
    again = CellSpec.from_dict(cell.to_dict())
    assert again == cell and again.key == cell.key
    assert tiny_cell(frames=16).key != cell.key


def test_cell_from_dict_rejects_unknown_fields(tiny_cell):
    d = tiny_cell().to_dict()
    d["framse"] = 3
    with pytest.raises(UserError, match="frames"):
        CellSpec.from_dict(d)
