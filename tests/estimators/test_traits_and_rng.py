"""Traits each estimator declares and stamps on its Estimates, the kernel/class split, seeded randomness
that never touches the global RNG streams, and one clear error for bad settings."""
import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch

from ibhooks import functional
from ibhooks.estimators.base import Estimator
from ibhooks.estimators.binning import Binning
from ibhooks.estimators.knn import KSG
from ibhooks.estimators.noisy_channel import NoisyChannel
from ibhooks.estimators.registry import available, estimator_class, make_estimator
from ibhooks.schema.estimate import Estimate, EstimatorTraits

T = EstimatorTraits
DECLARED = {
    "binning": T(discretises=True, exact=True, cap="log2_n"),
    "binning_adaptive": T(discretises=True, exact=True, cap="log2_n"),
    "kde": T(adds_noise=True, pairwise=True, cap="log2_n"),
    "noisy_channel": T(adds_noise=True, cap="log2_n"),
    "ksg": T(),
    "ross": T(),
    "renyi": T(pairwise=True, cap="log2_n"),
    "infonce": T(cap="log2_k"),
    "exact": T(exact=True, cap="log2_n"),
}
# Settings that are cheap and reach every random path: bootstrap, random batches, MC draws, critic training.
RANDOM = {
    "binning": {"n_boot": 20}, "binning_adaptive": {"n_boot": 20}, "renyi": {"batch_size": 64},
    "noisy_channel": {"mc_samples": 1000}, "infonce": {"steps": 5, "batch_size": 32},
}


def data(n=200, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.tanh(torch.randn(n, d, generator=g))
    return t, (t[:, 0] > 0).long() + (t[:, 1] > 0.5).long()


def make(name, **extra):
    return make_estimator((name, {**RANDOM.get(name, {}), **extra}))


def figures(pair):
    return [(e.value, e.ci, e.quantity) for e in pair if e is not None]


def global_rng_untouched(fn):
    """Run ``fn`` and report whether torch's and numpy's global random streams are where they were."""
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    fn()
    np_after = np.random.get_state()
    return torch.equal(torch_state, torch.get_rng_state()) and all(
        np.array_equal(a, b) for a, b in zip(np_state, np_after))


def test_the_rng_probe_catches_global_draws():
    assert global_rng_untouched(lambda: torch.randn(3, generator=torch.Generator().manual_seed(0)))
    assert not global_rng_untouched(lambda: torch.randn(3))
    assert not global_rng_untouched(lambda: np.random.rand())


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_each_class_declares_its_traits_and_its_estimates_carry_them(name):
    cls = estimator_class(name)
    assert "traits" in {k for c in cls.__mro__ if c is not Estimator for k in vars(c)}
    assert cls.traits == DECLARED[name]
    t, y = data()
    if name == "exact":  # measures layers the network quantizes itself: a quantized layer
        t = torch.round(t * 8) / 8
    i_xt, i_ty = make(name).layer_information(t, y, layer="l")
    entropy_slot = name in ("ksg", "ross")
    expected_xt = dataclasses.replace(cls.traits, xt_is_entropy=True) if entropy_slot else cls.traits
    assert i_xt.traits == expected_xt and i_ty.traits == cls.traits
    assert Estimate.from_dict(i_xt.to_dict()).traits == i_xt.traits  # survives the run log
    if entropy_slot:
        assert i_xt.diagnostics["not_mutual_information"] is True  # kept for old readers


def test_every_registered_estimator_declares_traits_of_its_own():
    for name in available():
        cls = estimator_class(name)
        owners = [c for c in cls.__mro__ if "traits" in vars(c)]
        assert owners and owners[0] is not Estimator, f"{name}: declare `traits` on the class"


def test_a_renamed_subclass_is_recorded_as_what_it_declares():
    class Robin(Binning):  # a 'binning' by another name, and a KSG that says it is exact
        name = "robin"

    class Odd(KSG):
        name = "combined_knn"
        traits = EstimatorTraits(exact=True)

    t, y = data()
    i_xt, i_ty = Robin(range=(-1.0, 1.0)).layer_information(t, y)
    assert i_xt.estimator == i_ty.estimator == "robin" and i_xt.traits.discretises and i_ty.traits.exact
    h, ross = Odd().layer_information(t, y)
    assert h.estimator == "combined_knn" and h.traits == EstimatorTraits(exact=True, xt_is_entropy=True)
    assert ross.traits == EstimatorTraits(exact=True)


def test_per_call_trait_variants():
    t, y = data()
    ksg = KSG().mutual_information(t[:, :1], t[:, 1:])
    assert ksg.traits.cap == "log2_n" and not ksg.traits.xt_is_entropy and ksg.cap is not None
    plain = NoisyChannel(mc_samples=1000).layer_information(t, y)
    net = NoisyChannel(mc_samples=1000, noise_in_network=True).layer_information(t, y)
    for a, b in zip(plain, net):  # same numbers, another statement about what they are
        assert a.value == b.value and a.ci == b.ci
        assert a.traits.adds_noise and not a.traits.noise_in_network
        assert b.traits.noise_in_network and not b.traits.adds_noise
        assert "noise in the network" in b.quantity and "noise in the network" not in a.quantity
        assert b.params["noise_in_network"] is True and "noise_in_network" not in a.params


KERNEL_CASES = [
    ("binning", {"n_bins": 20, "range": (-1.0, 1.0), "n_boot": 10, "seed": 3}, "binned_layer_information"),
    ("binning_adaptive", {"n_bins": 20}, ("binned_layer_information", {"n_bins": 20, "range": "adaptive"})),
    ("kde", {"noise_var": 0.05, "bound": "lower"}, "kde_layer_information"),
    ("noisy_channel", {"mc_samples": 800, "seed": 2}, "noisy_channel_layer_information"),
    ("ksg", {"k": 4, "seed": 1}, ("knn_layer_information", {"k": 4, "seed": 1})),
    ("renyi", {"alpha": 2.0, "batch_size": 64, "seed": 5}, "renyi_layer_information"),
    ("infonce", {"steps": 5, "batch_size": 32, "seed": 1}, "infonce_layer_information"),
]


@pytest.mark.parametrize("name,settings,kernel", KERNEL_CASES, ids=[c[0] for c in KERNEL_CASES])
def test_kernels_are_the_classes_math(name, settings, kernel):
    kernel, kw = (kernel, dict(settings)) if isinstance(kernel, str) else kernel
    t, y = data()
    by_class = make_estimator((name, settings)).layer_information(t, y)
    by_kernel = tuple(getattr(functional, kernel)(t, y, **kw))[:2]  # infonce also returns its critics
    for a, b in zip(by_class, by_kernel):
        assert (a.value, a.ci, a.quantity, a.kind, a.cap) == (b.value, b.ci, b.quantity, b.kind, b.cap)
        assert b.traits == a.traits  # the kernel stamps the same traits by default
    assert by_kernel[0].estimator in (name, "binning", "ksg")


@pytest.mark.parametrize("name", sorted(available()))
def test_no_global_rng_and_same_seed_same_answer(name):
    """Every registered estimator: torch's and numpy's global streams untouched; same seed, same answer."""
    t, y = data()
    if name == "exact":  # measures layers the network quantizes itself: a quantized layer
        t = torch.round(t * 8) / 8
    seeded = "seed" in inspect.signature(estimator_class(name)).parameters
    runs = []
    for _ in range(2):  # two fresh instances with the same seed
        est = make(name, seed=7) if seeded else make(name)
        if getattr(est, "measures_xt", True):
            call = lambda: est.layer_information(t, y, layer="l")  # noqa: E731
        else:  # an I(T;Y)-only estimator (classifier probe, Gaussian, ...)
            call = lambda: (est.label_information(t, y, layer="l"),)  # noqa: E731
        assert global_rng_untouched(lambda: runs.append(figures(call())))
    assert runs[0] == runs[1]
    try:
        assert global_rng_untouched(lambda: est.mutual_information(t, y, discrete_b=True))
    except NotImplementedError:
        pass


@pytest.mark.parametrize("name", ["binning", "noisy_channel", "renyi", "infonce"])
def test_the_seed_is_used(name):
    t, y = data()
    a = figures(make(name, seed=1).layer_information(t, y))
    b = figures(make(name, seed=2).layer_information(t, y))
    assert a != b  # bootstrap ci, MC draws, batch split, critic init differ with the seed


BAD = [
    (Binning, {"n_bins": 1.5}, "n_bins"), (Binning, {"seed": -1}, "seed"), (Binning, {"seed": "0"}, "seed"),
    (Binning, {"range": ("a", 1)}, "range"), (Binning, {"n_boot": True}, "n_boot"),
    ("kde", {"noise_var": float("nan")}, "noise_var"), ("kde", {"block_size": 0}, "block_size"),
    ("noisy_channel", {"mc_samples": 0}, "mc_samples"),
    ("noisy_channel", {"samples_per_row": 2.5}, "samples_per_row"),
    ("noisy_channel", {"noise_in_network": "yes"}, "noise_in_network"),
    ("noisy_channel", {"seed": 2 ** 40}, "seed"),
    ("ksg", {"k": 0}, "k must"), ("ksg", {"jitter": -1.0}, "jitter"),
    ("ksg", {"algorithm": True}, "algorithm"), ("renyi", {"gamma": 0}, "gamma"),
    ("renyi", {"k_nn": 0}, "k_nn"), ("renyi", {"batch_size": 1}, "batch_size"),
    ("renyi", {"sigma": -1.0}, "sigma"), ("infonce", {"lr": 0}, "lr"),
    ("infonce", {"saturation_tol": -1}, "saturation_tol"),
    ("infonce", {"eval_fraction": 1.0}, "eval_fraction"),
    ("infonce", {"warm_start": "no"}, "warm_start"), ("infonce", {"steps": -1}, "steps"),
]


@pytest.mark.parametrize("cls,kwargs,match", BAD,
                         ids=[f"{c if isinstance(c, str) else c.name}-{m}" for c, _, m in BAD])
def test_bad_settings_get_one_clear_error_at_construction(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        estimator_class(cls)(**kwargs) if isinstance(cls, str) else cls(**kwargs)


def test_per_layer_ranges_refuse_a_general_pair_with_the_fix():
    t, _ = data()
    with pytest.raises(ValueError, match=r"range=\(lo, hi\)"):
        Binning(range={"a": (-1, 1)}).mutual_information(t[:, :1], t[:, 1:])
    assert math.isfinite(Binning(range={"a": (-1, 1)}).layer_information(t, layer="a")[0].value)
