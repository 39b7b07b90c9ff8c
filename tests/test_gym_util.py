"""cpprb's utilities in laber: create_env_dict / create_before_add_func (gymnasium spaces), create_buffer, train.

Each space case has a hard-coded expected ``env_dict``, so the tests mean something without cpprb; where cpprb
11.0.0 is installed, the same spaces are also run through cpprb's own helpers and compared (names mapped where
laber deliberately differs: cpprb's ``create_env_dict`` names top-level ``Dict`` fields ``<key>``, laber
``obs_<key>`` like cpprb's ``create_before_add_func``; cpprb supports no nesting).
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import pathlib
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces as S

import laber
from laber import PrioritizedReplayBuffer, ReplayBuffer, create_before_add_func, create_buffer, create_env_dict, train
from laber.gym import UnsupportedSpaceError
from laber.util import TrainSummary

f32, f64, i32, i64 = np.float32, np.float64, np.int32, np.int64


class SpaceEnv(gym.Env[Any, Any]):
    """An environment that only has spaces (all that create_env_dict and create_before_add_func read)."""

    def __init__(self, observation_space: S.Space[Any], action_space: S.Space[Any]) -> None:
        self.observation_space = observation_space
        self.action_space = action_space


def spec(shape: Any, dtype: type) -> dict[str, Any]:
    return {"shape": shape, "dtype": dtype}


SCALARS = {"rew": spec(1, f32), "done": spec(1, f32)}

# id: (observation space, action space, expected env_dict)
CASES: dict[str, tuple[S.Space[Any], S.Space[Any], dict[str, dict[str, Any]]]] = {
    "box-discrete": (
        S.Box(-1, 1, (3,)),
        S.Discrete(4),
        {"obs": spec((3,), f32), "act": spec(1, i32), "next_obs": spec((3,), f32), **SCALARS},
    ),
    "uint8-image-box-action": (
        S.Box(0, 255, (2, 3, 4), dtype=np.uint8),
        S.Box(-1, 1, (2,), dtype=np.float64),
        {"obs": spec((2, 3, 4), f32), "act": spec((2,), f32), "next_obs": spec((2, 3, 4), f32), **SCALARS},
    ),
    "scalar-box-discrete-start": (
        S.Box(0, 1, ()),
        S.Discrete(3, start=-1),
        {"obs": spec((), f32), "act": spec(1, i32), "next_obs": spec((), f32), **SCALARS},
    ),
    "multidiscrete-multibinary": (
        S.MultiDiscrete([3, 4]),
        S.MultiBinary(5),
        {"obs": spec((2,), i32), "act": spec(5, i32), "next_obs": spec((2,), i32), **SCALARS},
    ),
    "2d-multibinary-2d-multidiscrete": (
        S.MultiBinary([2, 3]),
        S.MultiDiscrete(np.array([[2, 3], [4, 5]]), start=np.array([[0, 1], [-2, 0]])),
        {"obs": spec((2, 3), i32), "act": spec((2, 2), i32), "next_obs": spec((2, 3), i32), **SCALARS},
    ),
    "tuple-tuple": (
        S.Tuple((S.Box(-1, 1, (2,)), S.Discrete(3))),
        S.Tuple((S.Discrete(2), S.Box(0, 1, (1,)))),
        {
            "obs0": spec((2,), f32),
            "obs1": spec(1, i32),
            "act0": spec(1, i32),
            "act1": spec((1,), f32),
            "next_obs0": spec((2,), f32),
            "next_obs1": spec(1, i32),
            **SCALARS,
        },
    ),
    "dict-dict": (
        S.Dict({"pos": S.Box(-1, 1, (2,)), "id": S.Discrete(3)}),
        S.Dict({"move": S.Discrete(2), "force": S.Box(-1, 1, (1,))}),
        {
            "obs_id": spec(1, i32),
            "obs_pos": spec((2,), f32),
            "act_force": spec((1,), f32),
            "act_move": spec(1, i32),
            "next_obs_id": spec(1, i32),
            "next_obs_pos": spec((2,), f32),
            **SCALARS,
        },
    ),
    "dict-of-tuple/tuple-of-dict": (
        S.Dict({"pos": S.Box(-1, 1, (2,)), "sub": S.Tuple((S.Discrete(3), S.Box(0, 1, (2,))))}),
        S.Tuple((S.Dict({"a": S.Discrete(2)}), S.MultiBinary(3))),
        {
            "obs_pos": spec((2,), f32),
            "obs_sub_0": spec(1, i32),
            "obs_sub_1": spec((2,), f32),
            "act0_a": spec(1, i32),
            "act1": spec(3, i32),
            "next_obs_pos": spec((2,), f32),
            "next_obs_sub_0": spec(1, i32),
            "next_obs_sub_1": spec((2,), f32),
            **SCALARS,
        },
    ),
    "three-levels": (
        S.Tuple((S.Tuple((S.Discrete(2), S.Dict({"x": S.Box(-1, 1, (1,))}))), S.MultiDiscrete([2, 2, 2]))),
        S.Dict({"arm": S.Dict({"joint": S.MultiDiscrete([2, 2]), "grip": S.MultiBinary(1)})}),
        {
            "obs0_0": spec(1, i32),
            "obs0_1_x": spec((1,), f32),
            "obs1": spec((3,), i32),
            "act_arm_grip": spec(1, i32),
            "act_arm_joint": spec((2,), i32),
            "next_obs0_0": spec(1, i32),
            "next_obs0_1_x": spec((1,), f32),
            "next_obs1": spec((3,), i32),
            **SCALARS,
        },
    ),
}
NESTED = {"dict-of-tuple/tuple-of-dict", "three-levels"}


def make_env(case: str) -> SpaceEnv:
    obs_space, act_space, _ = CASES[case]
    return SpaceEnv(obs_space, act_space)


def normalised(env_dict: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """Shapes as tuples (``5`` -> ``(5,)``, a list -> tuple) and dtypes as np.dtype, for comparisons with cpprb."""
    return {
        name: (tuple(int(d) for d in np.asarray(s["shape"]).reshape(-1)), np.dtype(s["dtype"]))
        for name, s in env_dict.items()
    }


def cpprb_names(case: str, env_dict: Mapping[str, Any]) -> dict[str, Any]:
    """cpprb's env_dict with its top-level Dict names (``key``, ``next_key``) renamed to laber's."""
    obs_space, act_space, _ = CASES[case]
    rename: dict[str, str] = {}
    if isinstance(obs_space, S.Dict):
        rename |= {k: f"obs_{k}" for k in obs_space.spaces} | {f"next_{k}": f"next_obs_{k}" for k in obs_space.spaces}
    if isinstance(act_space, S.Dict):
        rename |= {k: f"act_{k}" for k in act_space.spaces}
    return {rename.get(k, k): v for k, v in env_dict.items()}


def leaf_values(value: Any, prefix: str, top: bool = True) -> dict[str, Any]:
    """The documented naming rule, written independently of laber.gym: obs<i>/obs_<key> at the top, _<i>/_<key>
    below."""
    if isinstance(value, Mapping):
        items = [(f"{prefix}_{k}", v) for k, v in value.items()]
    elif isinstance(value, tuple):
        items = [(f"{prefix}{i}" if top else f"{prefix}_{i}", v) for i, v in enumerate(value)]
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for name, v in items:
        out |= leaf_values(v, name, top=False)
    return out


# --------------------------------------------------------------------------------------------- create_env_dict
@pytest.mark.parametrize("case", list(CASES))
def test_env_dict_matches_the_expected_fields(case: str) -> None:
    expected = CASES[case][2]
    got = create_env_dict(make_env(case))
    assert got == expected
    assert {k: type(v["shape"]) for k, v in got.items()} == {k: type(v["shape"]) for k, v in expected.items()}
    groups = ["obs", "act", "rew", "next_obs", "done"]
    order = [max(i for i, g in enumerate(groups) if name.startswith(g)) for name in got]
    assert order == sorted(order)  # obs fields first, then act, rew, next_obs, done
    ReplayBuffer(4, got)  # a valid env_dict for laber's buffer


@pytest.mark.parametrize("case", list(CASES))
def test_env_dict_matches_cpprb(case: str) -> None:
    util = pytest.importorskip("cpprb.util")
    env = make_env(case)
    if case in NESTED:
        with pytest.raises(NotImplementedError):  # cpprb stops at one level; laber flattens any depth
            util.create_env_dict(env)
        return
    assert normalised(create_env_dict(env)) == normalised(cpprb_names(case, util.create_env_dict(env)))


@pytest.mark.parametrize("types", [{"int_type": i64, "float_type": f64}, {"int_type": np.int16}, {"float_type": "f8"}])
def test_int_and_float_types(types: dict[str, Any]) -> None:
    env = make_env("dict-dict")
    got = create_env_dict(env, **types)
    itype, ftype = np.dtype(types.get("int_type", i32)).type, np.dtype(types.get("float_type", f32)).type
    assert got["obs_id"]["dtype"] is itype and got["act_move"]["dtype"] is itype
    assert got["obs_pos"]["dtype"] is ftype and got["rew"]["dtype"] is ftype and got["done"]["dtype"] is ftype
    cpprb_util = pytest.importorskip("cpprb.util")
    assert normalised(got) == normalised(cpprb_names("dict-dict", cpprb_util.create_env_dict(env, **types)))


def test_cartpole_env_dict() -> None:
    env = gym.make("CartPole-v1")
    expected = {"obs": spec((4,), f32), "act": spec(1, i32), "next_obs": spec((4,), f32), **SCALARS}
    assert create_env_dict(env) == expected
    cpprb_util = pytest.importorskip("cpprb.util")
    assert cpprb_util.create_env_dict(env) == expected


# --------------------------------------------------------------------------------------------- before_add
def transitions(case: str, n: int, seed: int = 0) -> list[tuple[Any, Any, Any, float, bool]]:
    obs_space, act_space, _ = CASES[case]
    obs_space.seed(seed)
    act_space.seed(seed + 1)
    obs = [obs_space.sample() for _ in range(n + 1)]
    return [(obs[t], act_space.sample(), obs[t + 1], 0.5 * t, t == n - 1) for t in range(n)]


@pytest.mark.parametrize("case", list(CASES))
def test_before_add_samples_go_into_a_replay_buffer(case: str) -> None:
    env = make_env(case)
    env_dict = create_env_dict(env)
    before_add = create_before_add_func(env)
    rb = ReplayBuffer(16, env_dict, rng=0)
    steps = transitions(case, 5)
    for obs, act, next_obs, rew, done in steps:
        fields = before_add(obs, act, next_obs, rew, done)
        assert set(fields) == set(env_dict)
        rb.add(**fields)
    stored = rb.get_all_transitions()
    assert rb.get_stored_size() == 5
    for t, (obs, act, next_obs, rew, done) in enumerate(steps):
        expected = leaf_values(obs, "obs") | leaf_values(act, "act") | leaf_values(next_obs, "next_obs")
        expected |= {"rew": rew, "done": done}
        assert set(expected) == set(env_dict)
        for name, value in expected.items():
            dtype = np.dtype(env_dict[name]["dtype"])
            assert stored[name].dtype == dtype
            np.testing.assert_array_equal(stored[name][t].reshape(-1), np.asarray(value, dtype=dtype).reshape(-1))


@pytest.mark.parametrize("case", [c for c in CASES if c not in NESTED])
def test_before_add_matches_cpprb(case: str) -> None:
    util = pytest.importorskip("cpprb.util")
    env = make_env(case)
    for obs, act, next_obs, rew, done in transitions(case, 3):
        ours = create_before_add_func(env)(obs, act, next_obs, rew, done)
        theirs = util.create_before_add_func(env)(obs, act, next_obs, rew, done)
        assert set(ours) == set(theirs)
        assert all(ours[k] is theirs[k] for k in ours)  # values pass through untouched in both


def test_cpprb_dict_fields_do_not_fit_its_own_before_add() -> None:
    """The reason laber names Dict fields obs_<key> in create_env_dict too: cpprb's pair fails on Dict spaces."""
    cpprb = pytest.importorskip("cpprb")
    from cpprb.util import create_before_add_func as cpprb_before_add
    from cpprb.util import create_env_dict as cpprb_env_dict

    env = make_env("dict-dict")
    obs, act, next_obs, rew, done = transitions("dict-dict", 1)[0]
    with pytest.raises(KeyError):
        cpprb.ReplayBuffer(4, cpprb_env_dict(env)).add(**cpprb_before_add(env)(obs, act, next_obs, rew, done))
    ReplayBuffer(4, create_env_dict(env)).add(**create_before_add_func(env)(obs, act, next_obs, rew, done))


def test_before_add_a_batch() -> None:
    env = make_env("dict-of-tuple/tuple-of-dict")
    steps = transitions("dict-of-tuple/tuple-of-dict", 3)
    obs: dict[str, Any] = {
        "pos": np.stack([s[0]["pos"] for s in steps]),
        "sub": (np.array([s[0]["sub"][0] for s in steps]), np.stack([s[0]["sub"][1] for s in steps])),
    }
    act = ({"a": np.array([s[1][0]["a"] for s in steps])}, np.stack([s[1][1] for s in steps]))
    rb = ReplayBuffer(8, create_env_dict(env))
    rb.add(**create_before_add_func(env)(obs, act, obs, np.zeros(3), np.zeros(3)))
    stored = rb.get_all_transitions()
    assert rb.get_stored_size() == 3
    np.testing.assert_array_equal(stored["obs_sub_0"][:, 0], obs["sub"][0])
    np.testing.assert_array_equal(stored["act0_a"][:, 0], act[0]["a"])
    np.testing.assert_array_equal(stored["next_obs_sub_1"], obs["sub"][1])


@pytest.mark.parametrize(
    ("obs", "error", "message"),
    [
        ([1.0, 2.0], TypeError, r"obs must be a dict with keys \['pos', 'sub'\]"),
        ({"pos": np.zeros(2)}, ValueError, r"obs must have exactly the keys .* missing \['sub'\], unexpected \[\]"),
        (
            {"pos": np.zeros(2), "sub": (0, np.zeros(2)), "x": 1},
            ValueError,
            r"obs must have exactly .* missing \[\], unexpected \['x'\]",
        ),
        ({"pos": np.zeros(2), "sub": (0,)}, ValueError, r"obs\['sub'\] must be a tuple of 2 values .* got 1"),
        ({"pos": np.zeros(2), "sub": "ab"}, TypeError, r"obs\['sub'\] must be a tuple of 2 values .* got str"),
        ({"pos": np.zeros(2), "sub": 3}, TypeError, r"obs\['sub'\] must be a tuple of 2 values .* got int"),
    ],
)
def test_before_add_checks_the_structure(obs: Any, error: type[Exception], message: str) -> None:
    before_add = create_before_add_func(make_env("dict-of-tuple/tuple-of-dict"))
    good_act = ({"a": 1}, np.zeros(3, dtype=np.int8))
    good_obs = {"pos": np.zeros(2), "sub": (0, np.zeros(2))}
    with pytest.raises(error, match=message):
        before_add(obs, good_act, good_obs, 0.0, False)
    with pytest.raises(error, match=message.replace("obs", "next_obs", 1)):
        before_add(good_obs, good_act, obs, 0.0, False)
    with pytest.raises(TypeError, match=r"act\[0\] must be a dict with keys \['a'\]"):
        before_add(good_obs, (1, np.zeros(3)), good_obs, 0.0, False)


# --------------------------------------------------------------------------------------------- bad spaces / types
def test_env_without_spaces() -> None:
    with pytest.raises(TypeError, match=r"env must be a gymnasium environment with an observation_space"):
        create_env_dict(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"env must be .* action_space .* whose action_space is 3"):
        create_env_dict(SpaceEnv(S.Discrete(2), 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"env must be a gymnasium environment"):
        create_before_add_func(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"int_type": f32}, r"int_type must be a numpy integer dtype .* got int_type=<class 'numpy.float32'>"),
        ({"int_type": "nonsense"}, r"int_type must be a numpy integer dtype"),
        ({"int_type": bool}, r"int_type must be a numpy integer dtype"),
        ({"float_type": i32}, r"float_type must be a numpy float dtype .* got float_type=<class 'numpy.int32'>"),
        ({"float_type": np.complex64}, r"float_type must be a numpy float dtype"),
    ],
)
def test_bad_dtypes(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        create_env_dict(make_env("box-discrete"), **kwargs)


@pytest.mark.parametrize(
    ("space", "int_type", "values"),
    [
        (S.Discrete(2**40), None, "0..1099511627775"),
        (S.Discrete(300), np.uint8, "0..299"),
        (S.Discrete(3, start=-1), np.uint8, "-1..1"),
        (S.MultiDiscrete([2, 200]), np.int8, "0..199"),
    ],
)
def test_discrete_values_must_fit_int_type(space: S.Space[Any], int_type: Any, values: str) -> None:
    env = SpaceEnv(S.Dict({"k": space}), S.Discrete(2))
    with pytest.raises(
        ValueError, match=rf"int_type=\w+ cannot hold the values {values} of env.observation_space\['k'\]"
    ):
        create_env_dict(env, int_type=int_type)
    assert create_env_dict(env, int_type=np.int64)["obs_k"]["dtype"] is i64


@pytest.mark.parametrize(
    "space",
    [
        S.Text(5),
        S.Sequence(S.Discrete(2)),
        S.Graph(node_space=S.Box(0, 1, (2,)), edge_space=None),
        S.OneOf((S.Discrete(2), S.Box(0, 1, (1,)))),
    ],
    ids=["Text", "Sequence", "Graph", "OneOf"],
)
def test_variable_size_spaces_are_refused(space: S.Space[Any]) -> None:
    env = SpaceEnv(S.Tuple((S.Discrete(2), S.Dict({"v": space}))), S.Discrete(2))
    name = type(space).__name__
    with pytest.raises(UnsupportedSpaceError, match=rf"env.observation_space\[1\]\['v'\] is a {name} space") as info:
        create_env_dict(env)
    assert isinstance(info.value, NotImplementedError) and isinstance(info.value, TypeError)
    with pytest.raises(NotImplementedError, match=r"env.action_space is a"):
        create_before_add_func(SpaceEnv(S.Discrete(2), space))


def test_empty_and_colliding_spaces() -> None:
    with pytest.raises(ValueError, match=r"env.observation_space\['e'\] is an empty Tuple space"):
        create_env_dict(SpaceEnv(S.Dict({"e": S.Tuple(())}), S.Discrete(2)))
    with pytest.raises(ValueError, match=r"env.action_space is an empty Dict space"):
        create_env_dict(SpaceEnv(S.Discrete(2), S.Dict({})))
    colliding = S.Dict({"a_0": S.Discrete(2), "a": S.Tuple((S.Discrete(2),))})
    message = (
        r"env.observation_space\['a'\]\[0\] and env.observation_space\['a_0'\] would both be stored as field 'obs_a_0'"
    )
    with pytest.raises(ValueError, match=message):
        create_env_dict(SpaceEnv(colliding, S.Discrete(2)))


def test_gymnasium_is_imported_lazily() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["gymnasium"] = None  # makes `import gymnasium` fail
        import laber
        assert "gymnasium" not in sys.modules or sys.modules["gymnasium"] is None
        for f in (laber.create_env_dict, laber.create_before_add_func):
            try:
                f(object())
            except ImportError as exc:
                assert "laber[gym]" in str(exc), exc
            else:
                raise SystemExit("no ImportError")
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --------------------------------------------------------------------------------------------- create_buffer
ENV: dict[str, dict[str, Any]] = {
    "obs": {"shape": 3},
    "act": {"dtype": np.int32},
    "rew": {},
    "next_obs": {"shape": 3},
    "done": {},
}


def one(k: int = 0) -> dict[str, Any]:
    return {"obs": np.full(3, k), "act": k % 2, "rew": float(k), "next_obs": np.full(3, k + 1), "done": 0.0}


def test_create_buffer_plain_and_prioritized() -> None:
    rb = create_buffer(1e3, ENV)
    assert type(rb) is ReplayBuffer and rb.get_buffer_size() == 1000
    assert rb.get_all_transitions()["obs"].dtype == np.float32  # default_dtype None: float32, as cpprb
    per = create_buffer(100, ENV, prioritized=True, alpha=0.5, eps=1e-3, rng=0)
    assert type(per) is PrioritizedReplayBuffer and per.alpha == 0.5 and per.eps == 1e-3
    per.add(**one())
    assert set(per.sample(4, beta=0.5)) == {*ENV, "indexes", "weights"}
    cpprb = pytest.importorskip("cpprb")
    for prioritized in (False, True):
        assert (
            type(create_buffer(10, ENV, prioritized=prioritized)).__name__
            == type(cpprb.create_buffer(10, copy.deepcopy(ENV), prioritized=prioritized)).__name__  # it edits env_dict
        )


def test_create_buffer_passes_the_buffer_options() -> None:
    rb = create_buffer(10, ENV, Nstep={"size": 2, "rew": "rew", "next": "next_obs", "gamma": 0.5})
    for k in range(3):
        rb.add(**one(k))
    assert "discount" in rb.get_all_transitions()
    shared = create_buffer(10, {k: v for k, v in ENV.items() if k != "next_obs"}, next_of="obs", default_dtype=f64)
    shared.add(**one(4))
    stored = shared.get_all_transitions()
    assert stored["next_obs"].dtype == np.float64 and stored["next_obs"][0, 0] == 5
    a, b = create_buffer(10, ENV, rng=3), create_buffer(10, ENV, rng=3)
    for rb in (a, b):
        rb.add(**{k: np.stack([one(i)[k] for i in range(5)]) for k in ENV})
    np.testing.assert_array_equal(a.sample(16)["indexes"], b.sample(16)["indexes"])
    rb = create_buffer(10, ENV, mmap_prefix=None, ctx=None, backend=None)  # cpprb's defaults
    assert type(rb) is ReplayBuffer


def test_create_buffer_memory_mapped(tmp_path: pathlib.Path) -> None:
    for prioritized in (False, True):
        prefix = tmp_path / f"rb{int(prioritized)}"
        rb = create_buffer(10, ENV, prioritized=prioritized, mmap_prefix=str(prefix), rng=0)
        assert type(rb) is (PrioritizedReplayBuffer if prioritized else ReplayBuffer)
        rb.add(**one(7))
        assert rb.get_all_transitions()["rew"][0, 0] == 7.0
        assert sorted(tmp_path.glob(f"{prefix.name}_*"))  # the rows live in files named from the prefix


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"ctx": multiprocessing.get_context("spawn")}, laber.MPReplayBuffer),
        ({"backend": "sharedctypes"}, laber.MPReplayBuffer),
        (
            {"ctx": multiprocessing.get_context("spawn"), "prioritized": True, "alpha": 0.5},
            laber.MPPrioritizedReplayBuffer,
        ),
    ],
)
def test_create_buffer_multi_process(kwargs: dict[str, Any], expected: type) -> None:
    rb = create_buffer(10, ENV, rng=0, **kwargs)
    try:
        assert type(rb) is expected
        rb.add(**one(3))
        assert rb.get_stored_size() == 1 and rb.sample(2)["obs"].shape == (2, 3)
        if isinstance(rb, laber.MPPrioritizedReplayBuffer):
            assert rb.alpha == 0.5
    finally:
        if isinstance(rb, (laber.MPReplayBuffer, laber.MPPrioritizedReplayBuffer)):
            rb.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"backend": "bogus"}, ValueError, r"backend must be one of .* got backend='bogus'"),
        ({"ctx": multiprocessing.get_context("spawn"), "next_of": "obs"}, ValueError, r"next_of"),
        ({"prioritized": "yes"}, TypeError, r"prioritized must be True or False, got prioritized='yes'"),
        ({"alpha": 0.7}, TypeError, r"alpha is an option of prioritized buffers; pass prioritized=True"),
        ({"eps": 0.1}, TypeError, r"eps is an option of prioritized buffers"),
        ({"unknown": 1}, TypeError, r"unknown"),
        ({"Nstep": {"size": 0, "rew": "rew"}}, ValueError, r"Nstep\['size'\]"),
    ],
)
def test_create_buffer_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        create_buffer(10, ENV, **kwargs)


# --------------------------------------------------------------------------------------------- train
class Recorder:
    """A random policy (its own generator) and a counting update_policy, recording how train calls them."""

    def __init__(self, n_actions: int = 2, seed: int = 0, td: float | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_actions = n_actions
        self.td = td
        self.actions: list[tuple[int, int, bool]] = []
        self.updates: list[tuple[int, int, int]] = []
        self.episodes: list[tuple[int, int, float]] = []

    def get_action(self, obs: Any, step: int, episode: int, is_warmup: bool) -> int:
        self.actions.append((step, episode, is_warmup))
        return int(self.rng.integers(self.n_actions))

    def update_policy(self, sample: dict[str, np.ndarray], step: int, episode: int) -> np.ndarray | None:
        self.updates.append((len(sample["rew"]), step, episode))  # cpprb adds no "indexes"
        return None if self.td is None else np.full(len(sample["rew"]), self.td)

    def episode_callback(self, episode: int, episode_step: int, episode_reward: float) -> None:
        self.episodes.append((episode, episode_step, episode_reward))


class CountingBuffer(ReplayBuffer):
    ended = 0

    def on_episode_end(self) -> None:
        self.ended += 1
        super().on_episode_end()


def cartpole_run(seed: int = 0, **kwargs: Any) -> tuple[TrainSummary, Recorder, CountingBuffer]:
    env = gym.make("CartPole-v1")
    rb = CountingBuffer(1000, create_env_dict(env), rng=0)
    rec = Recorder(seed=seed)
    options: dict[str, Any] = {"max_steps": 300, "n_warmups": 50, "batch_size": 32, "seed": seed} | kwargs
    summary = train(rb, env, rec.get_action, rec.update_policy, episode_callback=rec.episode_callback, **options)
    return summary, rec, rb


def test_train_cartpole_counts_steps_warmups_updates_and_episodes() -> None:
    summary, rec, rb = cartpole_run()
    assert summary.steps == 300 and rb.get_stored_size() == 300
    assert [(s, w) for s, _, w in rec.actions] == [(s, s < 50) for s in range(300)]
    assert summary.updates == 250 and [s for _, s, _ in rec.updates] == list(range(50, 300))
    assert all(n == 32 for n, _, _ in rec.updates)
    # episodes: numbered 0.., each reported once, its length episode_step + 1, reward = length (1 per step)
    assert summary.episodes == len(rec.episodes) == rb.ended >= 5
    assert [e for e, _, _ in rec.episodes] == list(range(summary.episodes))
    lengths = [s + 1 for _, s, _ in rec.episodes]
    assert [r for _, _, r in rec.episodes] == [float(n) for n in lengths]
    assert sum(lengths) <= 300
    # the episode passed to get_action goes up right after each episode ends
    ends = np.cumsum(lengths)
    assert [e for _, e, _ in rec.actions] == [int(np.searchsorted(ends, s, side="right")) for s in range(300)]
    # stored: done on the terminal step of each episode only; next_obs of a step is the obs of the next one
    stored = rb.get_all_transitions()
    assert np.flatnonzero(stored["done"][:, 0]).tolist() == (ends - 1).tolist()
    inner = np.setdiff1d(np.arange(299), ends - 1)
    np.testing.assert_array_equal(stored["next_obs"][inner], stored["obs"][inner + 1])
    assert stored["act"].dtype == np.int32 and stored["rew"].sum() == 300


def test_train_is_reproducible_from_its_seeds() -> None:
    a, b, c = (cartpole_run(seed=s)[2].get_all_transitions() for s in (1, 1, 2))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["obs"], c["obs"])


class LegacyAPI:
    """gymnasium's CartPole behind the old gym API (reset -> obs, step -> 4-tuple), which cpprb.train expects."""

    def __init__(self, seed: int) -> None:
        self.env = gym.make("CartPole-v1")
        self.seed: int | None = seed

    def reset(self) -> Any:
        obs, _ = self.env.reset(seed=self.seed)
        self.seed = None
        return obs

    def step(self, action: Any) -> tuple[Any, Any, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, bool(terminated or truncated), info


def test_train_matches_cpprb_train() -> None:
    """Same trajectory, buffer contents and call sequence as cpprb.train on the same seeds (cpprb needs the old
    gym API); the one difference: cpprb reports the episode's last reward, laber its sum."""
    cpprb = pytest.importorskip("cpprb")
    _, rec, rb = cartpole_run(seed=5)
    env = gym.make("CartPole-v1")
    theirs_rb = cpprb.ReplayBuffer(1000, create_env_dict(env))
    theirs = Recorder(seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "cpprb.train is still beta release"
        cpprb.train(
            theirs_rb,
            LegacyAPI(seed=5),
            theirs.get_action,
            theirs.update_policy,
            max_steps=300,
            n_warmups=50,
            batch_size=32,
            episode_callback=theirs.episode_callback,
            logger=logging.getLogger("tests.cpprb"),
        )
    assert rec.actions == theirs.actions
    assert rec.updates == theirs.updates
    assert [e[:2] for e in rec.episodes] == [e[:2] for e in theirs.episodes]
    assert all(r == 1.0 for _, _, r in theirs.episodes)  # cpprb: the last reward of the episode
    assert [r for _, _, r in rec.episodes] == [s + 1.0 for _, s, _ in rec.episodes]  # laber: the sum
    ours, other = rb.get_all_transitions(), theirs_rb.get_all_transitions()
    assert set(ours) == set(other)
    for name in ours:
        np.testing.assert_array_equal(ours[name], other[name])


def test_train_max_episodes_and_zero_steps() -> None:
    summary, rec, rb = cartpole_run(max_episodes=2, n_warmups=0)
    assert summary.episodes == 2 == len(rec.episodes) == rb.ended
    assert summary.steps == sum(s + 1 for _, s, _ in rec.episodes) == rb.get_stored_size() == summary.updates
    summary, rec, rb = cartpole_run(max_steps=0)
    assert summary == TrainSummary(steps=0, episodes=0, updates=0) and not rec.actions


def test_train_prioritized_feeds_td_back() -> None:
    env = gym.make("CartPole-v1")
    rb = PrioritizedReplayBuffer(1000, create_env_dict(env), rng=0)
    rec = Recorder(td=3.0)
    summary = train(rb, env, rec.get_action, rec.update_policy, max_steps=100, n_warmups=10, batch_size=8, seed=0)
    assert summary.updates == 90
    priorities = rb.get_priorities()
    assert rb.get_max_priority() == 3.0 and set(np.unique(priorities)) <= {1.0, 3.0} and (priorities == 3.0).any()
    with pytest.raises(TypeError, match=r"update_policy must return the \|TD\| .* prioritized buffer .* got None"):
        train(rb, env, rec.get_action, lambda sample, step, episode: None, max_steps=5, seed=0)


def test_train_nstep_buffer_waits_for_rows() -> None:
    env = gym.make("CartPole-v1")
    rb = ReplayBuffer(1000, create_env_dict(env), Nstep={"size": 3, "rew": "rew", "next": "next_obs"}, rng=0)
    rec = Recorder()
    summary = train(rb, env, rec.get_action, rec.update_policy, max_steps=200, batch_size=4, seed=0)
    assert summary.updates == 198 and rec.updates[0][1] == 2  # no row before the third add
    unfinished = 200 - sum(s + 1 for _, s, _ in rec.episodes)  # steps of the episode still running at the end
    assert rb.get_stored_size() == 200 - min(2, unfinished)  # its last (up to) 2 transitions wait for their window


class DictEnv(gym.Env[dict[str, Any], Any]):
    """Dict observations {"pos", "t"}, reward t, truncated after `limit` steps, terminated when pos crosses 1."""

    def __init__(self, limit: int = 4) -> None:
        self.observation_space = S.Dict({"pos": S.Box(-10, 10, (1,)), "t": S.Discrete(100)})
        self.action_space = S.Discrete(2)
        self.limit = limit
        self.resets = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.resets += 1
        self.t = 0
        self.pos = 0.0
        return self.obs(), {}

    def obs(self) -> dict[str, Any]:
        return {"pos": np.array([self.pos], dtype=np.float32), "t": self.t}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.t += 1
        self.pos += 0.4 if action == 1 else 0.0
        return self.obs(), float(self.t), self.pos > 1.0, self.t >= self.limit, {}


def test_train_truncation_hooks_and_logger(caplog: pytest.LogCaptureFixture) -> None:
    env = DictEnv(limit=4)
    before_add = create_before_add_func(env)
    rb = CountingBuffer(100, create_env_dict(env), rng=0)
    rec = Recorder(seed=0)
    seen: list[Any] = []

    def get_action(obs: Any, step: int, episode: int, is_warmup: bool) -> int:
        seen.append(obs)
        return 0  # never terminates: every episode is cut by the time limit

    def after_step(obs: Any, act: Any, returns: tuple[Any, ...], step: int, episode: int) -> dict[str, Any]:
        next_obs, rew, terminated, _truncated, _ = returns
        return before_add(obs, act, next_obs, rew, terminated)

    with caplog.at_level(logging.INFO, logger="laber.util"):
        summary = train(
            rb,
            env,
            get_action,
            rec.update_policy,
            max_steps=12,
            n_warmups=2,
            batch_size=3,
            after_step=after_step,
            episode_callback=rec.episode_callback,
        )
    assert (
        summary == TrainSummary(steps=12, episodes=3, updates=10) and rb.ended == 3 and env.resets == 4
    )  # left reset, as cpprb
    assert rec.episodes == [(0, 3, 10.0), (1, 3, 10.0), (2, 3, 10.0)]  # rewards 1 + 2 + 3 + 4
    stored = rb.get_all_transitions()
    assert not stored["done"].any()  # truncated, not terminated: stored as not done
    assert (
        stored["obs_t"][:, 0].tolist() == [0, 1, 2, 3] * 3 and stored["next_obs_t"][:, 0].tolist() == [1, 2, 3, 4] * 3
    )
    assert [o["t"] for o in seen] == [0, 1, 2, 3] * 3
    assert next(r.getMessage() for r in caplog.records if r.name == "laber.util").startswith(
        "episode 0: 4 steps (4 in all)"
    )

    # done_check ends episodes early, obs_update and rew_sum replace the defaults, the logger is the one given
    logger = logging.getLogger("tests.train")
    seen.clear()
    rb2 = CountingBuffer(100, create_env_dict(env), rng=0)
    with caplog.at_level(logging.INFO, logger="tests.train"):
        summary = train(
            rb2,
            env,
            get_action,
            rec.update_policy,
            max_steps=6,
            after_step=after_step,
            done_check=lambda tr: tr["next_obs_t"] == 2,
            obs_update=lambda tr: {"pos": tr["next_obs_pos"] + 100, "t": tr["next_obs_t"]},
            rew_sum=lambda total, tr: max(total, tr["rew"]),
            logger=logger,
            episode_callback=rec.episode_callback,
        )
    assert summary.episodes == 3 and rb2.ended == 3
    assert rec.episodes[3:] == [(0, 1, 2.0), (1, 1, 2.0), (2, 1, 2.0)]
    assert [float(o["pos"][0]) for o in seen] == [0.0, 100.0] * 3  # reset's obs, then obs_update's
    assert any(r.name == "tests.train" and "episode 2: 2 steps (6 in all)" in r.getMessage() for r in caplog.records)


class CountingEnv:
    def __init__(self, reset: Any = ((0.0, {})), step: Any = (0.0, 1.0, False, False, {})) -> None:
        self.reset_value, self.step_value, self.calls = reset, step, 0

    def reset(self, seed: int | None = None) -> Any:
        self.calls += 1
        return self.reset_value

    def step(self, action: Any) -> Any:
        self.calls += 1
        return self.step_value


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"buffer": object()}, TypeError, r"buffer must be a laber replay buffer \(it has no add\(\)\)"),
        ({"env": object()}, TypeError, r"env must be a gymnasium environment \(it has no reset\(\)\)"),
        ({"get_action": 1}, TypeError, r"get_action must be a callable, got get_action=1"),
        ({"update_policy": None}, TypeError, r"update_policy must be a callable, got update_policy=None"),
        ({"max_steps": -1}, ValueError, r"max_steps must be an integer >= 0, got max_steps=-1"),
        ({"max_steps": 1.5}, TypeError, r"max_steps must be an integer >= 0, got max_steps=1.5"),
        ({"max_steps": True}, TypeError, r"max_steps must be an integer"),
        ({"max_episodes": 0}, ValueError, r"max_episodes must be an integer >= 1, got max_episodes=0"),
        ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 1, got batch_size=0"),
        ({"n_warmups": -2}, ValueError, r"n_warmups must be an integer >= 0, got n_warmups=-2"),
        ({"after_step": "f"}, TypeError, r"after_step must be a callable or None, got after_step='f'"),
        ({"done_check": 0}, TypeError, r"done_check must be a callable or None"),
        ({"obs_update": 0}, TypeError, r"obs_update must be a callable or None"),
        ({"rew_sum": 0}, TypeError, r"rew_sum must be a callable or None"),
        ({"episode_callback": 0}, TypeError, r"episode_callback must be a callable or None"),
        ({"logger": 5}, TypeError, r"logger must be a logging.Logger"),
        ({"seed": -1}, ValueError, r"seed must be an integer >= 0, got seed=-1"),
        ({"seed": "0"}, TypeError, r"seed must be an integer >= 0, got seed='0'"),
    ],
)
def test_train_bad_arguments_touch_nothing(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    env = CountingEnv()
    rb = ReplayBuffer(10, {"obs": {}, "act": {}, "rew": {}, "next_obs": {}, "done": {}})
    args: dict[str, Any] = {"buffer": rb, "env": env, "get_action": lambda *a: 0, "update_policy": lambda *a: None}
    args |= kwargs
    positional = [args.pop(k) for k in ("buffer", "env", "get_action", "update_policy")]
    with pytest.raises(error, match=message):
        train(*positional, max_steps=args.pop("max_steps", 5), **args)
    assert env.calls == 0 and rb.get_stored_size() == 0


@pytest.mark.parametrize(
    ("env", "after_step", "message"),
    [
        (CountingEnv(reset=0.0), None, r"env.reset\(\) must return gymnasium's \(obs, info\), got float"),
        (CountingEnv(step=(0.0, 1.0, False, {})), None, r"env.step\(\) must return gymnasium's .* tuple of length 4"),
        (
            CountingEnv(),
            lambda *a: [("obs", 0)],
            r"after_step must return the fields of buffer.add as a dict, got list",
        ),
    ],
)
def test_train_refuses_old_gym_api_and_bad_transitions(env: CountingEnv, after_step: Any, message: str) -> None:
    rb = ReplayBuffer(10, {"obs": {}, "act": {}, "rew": {}, "next_obs": {}, "done": {}})
    with pytest.raises(TypeError, match=message):
        train(rb, env, lambda *a: 0, lambda *a: None, max_steps=3, after_step=after_step)  # type: ignore[arg-type]


def test_public_names() -> None:
    for name in ("create_env_dict", "create_before_add_func", "create_buffer", "train"):
        assert name in laber.__all__ and getattr(laber, name).__doc__
