"""The Lightning callback on a Hugging Face model (issue 13, point 10): a tiny BertForSequenceClassification
(random weights, no downloads) in a LightningModule with a DataLoader of dict batches, the callback given a
dict probe; training is bit-identical to the same fit without the callback, the blocks are measured on
one chain from the data flow, and nothing is recorded as an error."""

import warnings

import pytest
import torch
import torch.nn.functional as F

L = pytest.importorskip("lightning.pytorch")
pytest.importorskip("transformers")
from ibhooks.integrations.lightning import IBCallback  # noqa: E402
from real_models import hf_bert  # noqa: E402
from test_real_models import N_PROBE, _text_task  # noqa: E402


class BertModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = hf_bert(depth=3)

    def forward(self, input_ids, attention_mask=None):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(**x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.x.items()}, self.y[i]


def _fit(tmp_path, callback=None):
    L.seed_everything(0, verbose=False)
    module = BertModule()
    x, y = _text_task(128, seed=1)
    loader = torch.utils.data.DataLoader(Pairs(x, y), batch_size=16, shuffle=False)
    trainer = L.Trainer(default_root_dir=tmp_path, max_steps=8, enable_progress_bar=False, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, deterministic=True,
                        callbacks=[callback] if callback else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        trainer.fit(module, loader)
    return module


def test_lightning_callback_on_a_hf_bert_with_a_dict_probe(tmp_path):
    base = _fit(tmp_path / "base")
    cb = IBCallback(probe=_text_task(N_PROBE, seed=2), schedule=4, verbose=False, log_dir=tmp_path / "ib")
    module = _fit(tmp_path / "mon", cb)
    for (k, a), b in zip(base.state_dict().items(), module.state_dict().values()):
        assert torch.equal(a, b), f"{k} differs from the fit without the callback"
    records = cb.history
    assert [r.step for r in records] == [0, 4, 8]
    assert not any(r.errors for r in records), [r.errors for r in records]
    assert all(r.n_samples == N_PROBE and r.h_y is not None for r in records)
    chain = max(cb.monitor.chains, key=lambda c: len(c.layers))
    blocks = [f"model.bert.encoder.layer.{i}" for i in range(3)]
    assert [n for n in chain.layers if n in blocks] == blocks, cb.monitor.chains
