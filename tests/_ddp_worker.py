"""Worker of tests/test_ddp.py: one process of a 2-rank gloo group on 127.0.0.1 (spawned).

Each rank runs, in order: unmonitored DDP training, the same with a probe-mode monitor, the same
with a passive monitor that all-gathers its reservoir, and a SyncBatchNorm model measured on rank 0
alone. Python-level collectives are counted while ``monitor.step()`` runs, and DDP forwards are
counted with a pre-hook on the wrapper, so the test can show the monitor ran no collective on one
rank alone. Results go to ``<out>/rank<r>.pt``.
"""
import datetime
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

import ibhooks
from models import data_for, mlp_bn_dropout

STEPS = 12
BATCH = 16
COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "broadcast", "barrier", "reduce",
               "reduce_scatter", "reduce_scatter_tensor", "gather", "scatter", "all_to_all",
               "all_to_all_single", "all_gather_object", "broadcast_object_list", "gather_object")


class CollectiveCounter:
    """Counts calls of torch.distributed collectives while ``active``."""

    def __init__(self) -> None:
        self.active = False
        self.counts = {}
        for name in COLLECTIVES:
            fn = getattr(dist, name, None)
            if fn is not None:
                setattr(dist, name, self._wrap(name, fn))

    def _wrap(self, name, fn):
        def wrapper(*args, **kwargs):
            if self.active:
                self.counts[name] = self.counts.get(name, 0) + 1
            return fn(*args, **kwargs)

        return wrapper


def capture_errors(record):
    """Errors of capture and estimation (what these tests are about); the checks stage is tested elsewhere."""
    return [e for e in record.errors if not str(e.get("error", "")).startswith("checks failed")]


def _train(rank, counter, out, mode):
    torch.manual_seed(0)
    model = mlp_bn_dropout()
    ddp = DDP(model)
    ddp_forwards = [0]
    ddp.register_forward_pre_hook(lambda m, a: ddp_forwards.__setitem__(0, ddp_forwards[0] + 1))
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-2)
    x, y = data_for("mlp", 512, seed=100 + rank)  # each rank its own shard
    monitor = None
    if mode == "probe":
        probe = data_for("mlp", 128, seed=1)
        monitor = ibhooks.IBMonitor(ddp, probe=probe, schedule=ibhooks.every_n(4), log_dir=out / "probe",
                                    run_name="ddp", verbose=False)
    elif mode == "gather":
        monitor = ibhooks.IBMonitor(ddp, schedule=ibhooks.every_n(4), passive_window=2, passive_min_rows=1,
                                    gather_passive=True,
                                    log_dir=out / "gather", run_name="ddp", verbose=False)
    counter.counts = {}
    g = torch.Generator().manual_seed(7)
    for _ in range(STEPS):
        idx = torch.randint(0, x.shape[0], (BATCH,), generator=g)
        xb, yb = x[idx], y[idx]
        ddp.train()
        loss = F.cross_entropy(ddp(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if monitor is not None:
            counter.active = True
            try:
                monitor.step(y=yb)
            finally:
                counter.active = False
    result = {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "buffers": {k: v.clone() for k, v in model.named_buffers()},
        "rng": torch.get_rng_state(),
        "ddp_forwards": ddp_forwards[0],
        "collectives": dict(counter.counts),
    }
    if monitor is not None:
        result.update(
            is_writer=monitor.is_writer,
            n_layers=len(monitor.layer_names),
            n_sinks=len(monitor.sinks),
            records=[(r.step, r.mode, r.n_samples, capture_errors(r)) for r in monitor.history],
        )
        monitor.close()
    return result


def _fsdp2(out, monitored):
    """FSDP2 (``fully_shard``) on CPU: passive mode, hooks registered before sharding, reservoir gathered."""
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.ReLU(),
                                torch.nn.Linear(8, 3))
    mon = None
    if monitored:
        mon = ibhooks.IBMonitor(model, schedule=ibhooks.every_n(3), gather_passive=True, passive_min_rows=1, log_dir=out / "fsdp2",
                                run_name="fsdp2", verbose=False)
    for i in (0, 2, 4):
        fully_shard(model[i])
    fully_shard(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = data_for("mlp", 256, seed=100 + dist.get_rank())
    g = torch.Generator().manual_seed(7)
    for _ in range(9):
        idx = torch.randint(0, x.shape[0], (BATCH,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(y=y[idx])
    result = {"params": {k: v.to_local().detach().clone() if hasattr(v, "to_local") else v.detach().clone()
                         for k, v in model.named_parameters()}}
    if mon is not None:
        result["records"] = [(r.step, r.mode, r.n_samples, capture_errors(r)) for r in mon.history]
        mon.close()
    return result


def _syncbn(rank, out):
    """Rank 0 measures a SyncBatchNorm model three times while rank 1 waits at a barrier (a sync
    attempt would hang, or raise on CPU)."""
    torch.manual_seed(0)
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(mlp_bn_dropout())  # DDP refuses SyncBN on CPU
    probe = data_for("mlp", 64, seed=1)
    mon = ibhooks.IBMonitor(model, probe=probe, schedule=1, log_dir=out / "syncbn", run_name="s", verbose=False)
    result = {}
    if rank == 0:
        for _ in range(2):
            mon.measure()
        result["records"] = [(r.step, r.n_samples, capture_errors(r)) for r in mon.history]
        # Control: a training-mode forward of SyncBatchNorm does try to sync, which fails loudly on CPU,
        # so a sync during the probe could not have gone unnoticed.
        try:
            model.train()
            model(probe[0][:8])
            result["train_forward"] = "ran"
        except ValueError as exc:
            result["train_forward"] = str(exc)
    mon.close()
    dist.barrier()
    return result


def worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    out = Path(out)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        counter = CollectiveCounter()
        results = {mode: _train(rank, counter, out, mode) for mode in ("base", "probe", "gather")}
        results["syncbn"] = _syncbn(rank, out)
        try:
            results["fsdp2_base"], results["fsdp2"] = _fsdp2(out, False), _fsdp2(out, True)
        except ImportError as exc:  # torch without FSDP2
            results["fsdp2_error"] = repr(exc)
        torch.save(results, out / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()
