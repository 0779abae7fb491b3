"""Resume only into the same run (the configuration fingerprint), and probes: a seeded stratified
subset over max_samples (never the first rows), one clear TypeError per unusable probe."""

import json

import pytest
import torch

from ibhooks.capture.probe import PROBE_FORMS, Probe
from ibhooks.capture.subset import subset_rows
from ibhooks.fingerprint import check_resume, diff_configs, fingerprint
from ibhooks.sinks.jsonl import JsonlSink

CONFIG = {
    "mode": "probe",
    "model": "MLP",
    "layers": ["0", "2"],
    "probe_samples": 256,
    "schedule": "every_n(1)",
    "estimators": {
        "binning": {"class": "Binning", "params": {"n_bins": 30}, "traits": {"discretises": True}}
    },
    "verbose": True,
}


def other(**changes):
    cfg = json.loads(json.dumps(CONFIG))
    for key, value in changes.items():
        cfg[key] = value
    return cfg


def test_fingerprint_covers_what_a_series_measures_and_nothing_else():
    fp = fingerprint(CONFIG)
    assert len(fp) == 16 and fp == fingerprint(json.loads(json.dumps(CONFIG)))
    assert fingerprint(other(schedule="log_spaced", verbose=False)) == fp  # not part of a series
    bins5 = other(estimators={"binning": {"class": "Binning", "params": {"n_bins": 5}}})
    for changed in (bins5, other(layers=["0"]), other(probe_samples=128), other(model="CNN")):
        assert fingerprint(changed) != fp
    assert diff_configs(CONFIG, bins5) == ["estimators.binning.params.n_bins: 30 -> 5"]
    assert diff_configs(CONFIG, other(layers=["0"], probe_samples=128)) == [
        "layers: ['0', '2'] -> ['0']",
        "probe_samples: 256 -> 128",
    ]
    with pytest.raises(TypeError, match="configuration as a dict"):
        fingerprint("abc")


def _log(path, config, with_fingerprint=True):
    sink = JsonlSink(path, fsync=False)
    head = {"config": config, **({"fingerprint": fingerprint(config)} if with_fingerprint else {})}
    sink.start(head)
    sink.close()


@pytest.mark.parametrize("with_fingerprint", [True, False])
def test_resume_with_another_configuration_is_refused_naming_the_difference(tmp_path, with_fingerprint):
    path = tmp_path / "r.jsonl"
    check_resume(path, fingerprint(CONFIG), CONFIG)  # nothing to continue yet
    _log(path, CONFIG, with_fingerprint)
    check_resume(path, fingerprint(CONFIG), CONFIG)
    bins5 = other(estimators={"binning": {"class": "Binning", "params": {"n_bins": 5}}})
    with pytest.raises(
        ValueError,
        match=r"another configuration \(estimators.binning.params.n_bins: 30 -> 5\)"
        r".*another run_name",
    ):
        check_resume(path, fingerprint(bins5), bins5)
    path.write_bytes(path.read_bytes()[:20])  # a torn header: nothing to continue
    check_resume(path, fingerprint(bins5), bins5)
    path.write_text("hello\n")
    with pytest.raises(ValueError, match="not an ibhooks run log"):
        check_resume(path, fingerprint(CONFIG), CONFIG)


def test_a_large_class_sorted_probe_keeps_every_class_in_proportion():
    y = torch.arange(10).repeat_interleave(100)  # sorted by class: the first rows are classes 0-2
    x = torch.arange(1000, dtype=torch.float32)[:, None].repeat(1, 3)
    probe = Probe.from_any((x, y), max_samples=256, seed=3)
    counts = torch.bincount(probe.y, minlength=10)
    assert probe.n == 256 and int(counts.min()) >= 25 and int(counts.max()) <= 26
    assert torch.equal(probe.x[:, 0].long() // 100, probe.y)  # rows stay paired with their labels
    assert probe.info == {"rows_given": 1000, "rows_used": 256, "subset": "stratified", "seed": 3}
    again = Probe.from_any((x, y), max_samples=256, seed=3)
    assert torch.equal(again.x, probe.x) and not torch.equal(
        Probe.from_any((x, y), max_samples=256, seed=4).x, probe.x
    )
    unlabeled = Probe.from_any(x, max_samples=100)
    assert unlabeled.info["subset"] == "random" and not torch.equal(unlabeled.x, x[:100])
    assert Probe.from_any((x[:50], y[:50]), max_samples=256).info == {
        "rows_given": 50,
        "rows_used": 50,
        "subset": "all",
    }


def test_a_large_dataloader_is_subsampled_by_index_and_stratified_by_its_targets():
    class Targeted(torch.utils.data.TensorDataset):
        def __init__(self, x, y):
            super().__init__(x, y)
            self.targets = y.tolist()

    y = torch.arange(4).repeat_interleave(250)
    x = torch.arange(1000, dtype=torch.float32)[:, None]
    state = torch.get_rng_state()
    probe = Probe.from_any(
        torch.utils.data.DataLoader(Targeted(x, y), batch_size=64, shuffle=True), max_samples=200
    )
    assert torch.equal(torch.get_rng_state(), state)  # the user's random stream is untouched
    assert (
        probe.n == 200
        and torch.bincount(probe.y).tolist() == [50] * 4
        and probe.info["subset"] == "stratified"
    )
    assert torch.equal(probe.x[:, 0].long() // 250, probe.y)


def test_subset_rows_is_vectorised_exact_and_rejects_impossible_sizes():
    idx = subset_rows(10, 10, 0)
    assert idx.tolist() == list(range(10))
    labels = torch.tensor([0] * 97 + [1] * 3)
    kept = labels[subset_rows(100, 34, 0, labels)]
    assert kept.tolist().count(1) == 1 and len(kept) == 34
    with pytest.raises(ValueError, match="cannot take 11 of 10"):
        subset_rows(10, 11, 0)


@pytest.mark.parametrize(
    "probe, match",
    [
        ("data.pt", "probe is a str"),
        ((torch.randn(8, 3), torch.zeros(8), torch.zeros(8)), "probe is a 3-tuple"),
        (torch.tensor(1.0), "0-dim tensor"),
        (
            {"input_ids": [1, 2, 3], "mask": None},
            "a dict probe .* needs tensors; its values are NoneType, list",
        ),
        (12, "probe is a int"),
    ],
    ids=["str", "3-tuple", "0-dim", "dict-without-tensors", "int"],
)
def test_an_unusable_probe_is_one_type_error_naming_what_a_probe_can_be(probe, match):
    with pytest.raises(TypeError, match=match) as info:
        Probe.from_any(probe, max_samples=64)
    assert str(info.value).endswith(PROBE_FORMS)


def test_a_dict_of_tensors_is_a_probe_of_keyword_inputs():
    probe = Probe.from_any(
        {"input_ids": torch.ones(300, 5, dtype=torch.long), "mask": torch.ones(300, 5)}, max_samples=64
    )
    assert probe.n == 64 and set(probe.x) == {"input_ids", "mask"} and probe.x["mask"].shape == (64, 5)


def test_a_failing_probe_forward_says_it_was_the_probe():
    from ibhooks.capture.probe import ProbeForwardError

    model = torch.nn.Linear(5, 2)
    probe = Probe.from_any((torch.randn(16, 3), torch.zeros(16, dtype=torch.long)), max_samples=64)
    with pytest.raises(
        ProbeForwardError,
        match=r"the probe's forward pass failed on rows 0:8 \(RuntimeError: "
        r".*probe_forward=",
    ):
        probe.run(model, batch_size=8, begin_pass=lambda n: None)
    assert model.training  # the train flag is put back
