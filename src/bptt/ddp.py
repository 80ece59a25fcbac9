r"""Data-parallel training: the launcher.  It starts (or joins) a process group and runs ``bptt.train.train``.

The loop is ``bptt.train``'s, the same for every backend: with ``backend="torch"`` inside an
initialised ``torch.distributed`` group, each rank takes its contiguous share of every global
mini-batch, the ranks all-reduce the gradient, and every rank takes the same numpy optimizer
step (so the replicas stay bit-identical).  This module only sets the group up:

    launch(cfg, out)   cfg.nproc == 1: in this process, no group;
                       cfg.nproc  > 1: that many processes (torch.multiprocessing, spawn), gloo over
                                       127.0.0.1; the rendezvous store is bound and held by this process;
                       under torchrun: joins torchrun's group (env://), one rank per process.

Loss (the model's, ``losses.py``, over scored steps): for a global batch G with n scored steps,
Loss = (1/n) sum_{b in G} sum_{t scored} E(y'_tb, y_tb); rank r sums over its part G_r,
scales by 1/n, and the all-reduce (sum over ranks) gives dLoss exactly as one process computes it
(up to the rounding of the sum).

From the command line, with every option and default of ``bptt train``:

    bptt train --task sine --backend torch --nproc 2 --out run/
    torchrun --standalone --nproc-per-node 2 -m bptt train --backend torch --task sine --out run/

(The command line sits above this module: ``python -m bptt`` is ``bptt``, and this module imports
nothing of it.)

Rank 0 writes --out (model.npz, metrics.json, config.json, checkpoint.npz, plots), as
``bptt train`` does; ``--resume`` continues a run with its own settings and process count.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from . import tasks
from .train import TrainConfig, TrainResult, load_task, result_from_checkpoint, train
from .validation import BPTTError, check_memory, format_bytes, memory_available

Progress = Callable[[dict[str, Any]], None]


def under_torchrun() -> bool:
    """True in a process that torchrun (or another env:// launcher) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ)


def torchrun_world() -> int:
    return int(os.environ["WORLD_SIZE"])


def is_rank0() -> bool:
    """Whether this process is the one that writes and prints (always, outside torchrun)."""
    return not under_torchrun() or int(os.environ.get("RANK", "0")) == 0


def _threads_per_rank(nproc: int) -> int:
    return max(1, (os.cpu_count() or 1) // nproc)


def launch(cfg: TrainConfig, out: str | Path | None = None, resume: bool = False, progress: Progress | None = None,
           data: tasks.TaskData | None = None) -> TrainResult | None:
    """Train ``cfg`` (backend torch) with cfg.nproc processes; returns rank 0's result (None on torchrun's other ranks).

    ``progress`` is called in this process with rank 0's progress (see ``bptt.train.train``).
    Spawned processes need ``if __name__ == "__main__":`` around the caller, as any spawn start does.
    """
    cfg.validate()
    if cfg.backend != "torch":
        raise BPTTError(f"bptt.ddp launches backend torch; backend {cfg.backend!r} trains in one process with bptt.train.train")
    data = data if data is not None else load_task(cfg)
    if under_torchrun():
        return _join_torchrun(cfg, out, resume, progress, data)
    if cfg.nproc == 1:
        return train(cfg, out, resume=resume, progress=progress, data=data)
    check_ranks(cfg.nproc)
    if out is None:
        with tempfile.TemporaryDirectory(prefix="bptt-ddp-") as tmp:
            return _spawn(cfg, Path(tmp), False, progress, data)
    return _spawn(cfg, Path(out), resume, progress, data)


# One rank is a Python process with torch loaded (about 350 MiB resident on Linux) plus its share of the data.
RANK_BYTES = 512 << 20


def check_ranks(nproc: int) -> None:
    """``nproc`` processes fit in this machine's memory; else one line with the most that do."""
    available = memory_available()
    check_memory(f"--nproc {nproc} (one torch process per rank, about {format_bytes(RANK_BYTES)} each)",
                 nproc * RANK_BYTES, f"give --nproc {max(1, available // RANK_BYTES)} or fewer", available)


def _join_torchrun(cfg: TrainConfig, out, resume: bool, progress: Progress | None, data) -> TrainResult | None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(_threads_per_rank(int(os.environ.get("LOCAL_WORLD_SIZE", torchrun_world()))))
    dist.init_process_group("gloo", init_method="env://")
    try:
        rank = dist.get_rank()
        result = train(cfg, out, resume=resume, progress=progress if rank == 0 else None, data=data)
        dist.barrier()  # nobody tears the group down while another rank still talks to it
    finally:
        dist.destroy_process_group()
    return result if rank == 0 else None


# Stopping the ranks: each gets SIGTERM (it unwinds as after Ctrl-C: a checkpoint being written is finished or
# left as it was, never half-written), and SIGKILL after STOP_GRACE seconds (a rank blocked in an all-reduce whose
# peer has gone cannot unwind).
STOP_GRACE = 3.0


def _spawn(cfg: TrainConfig, out: Path, resume: bool, progress: Progress | None, data) -> TrainResult:
    """cfg.nproc processes on this machine; rank 0 writes ``out``; the result is read back from its final checkpoint.

    Ctrl-C or SIGTERM here (or any error) stops every rank within STOP_GRACE seconds, then ends with one line; the
    ranks themselves ignore Ctrl-C (the terminal sends it to all of them) and leave when this process says so or
    dies.  Rank 0's progress comes through a pipe this process drains while it waits, so no rank blocks on it."""
    import logging
    import signal

    import torch.distributed as dist
    import torch.multiprocessing as mp

    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)  # its "Terminating process" lines
    # The rendezvous store listens on a port the kernel picks and this process keeps until the end:
    # no other run can take it between choosing and binding (a bind-close-reuse 'free port' can).
    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    reader, writer = mp.get_context("spawn").Pipe(duplex=False) if progress else (None, None)
    quiet = {"TORCH_CPP_LOG_LEVEL": "ERROR"}  # gloo's warnings when a peer leaves: the one line is ours
    saved = {k: os.environ.get(k) for k in quiet}
    sigint = signal.getsignal(signal.SIGINT)
    ctx = None
    try:
        os.environ.update(quiet)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the spawned interpreters: Ctrl-C is ours
        try:
            ctx = mp.start_processes(_worker, args=(cfg.nproc, store.port, cfg, str(out), resume, data, writer),
                                     nprocs=cfg.nproc, join=False, start_method="spawn")
        finally:
            signal.signal(signal.SIGINT, sigint)
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        while not ctx.join(timeout=0.2, grace_period=STOP_GRACE):
            _drain(reader, progress)
    except mp.ProcessExitedException as e:
        _stop(ctx)
        how = f"signal {e.signal_name}" if e.signal_name else f"exit status {e.exit_code}"
        raise BPTTError(f"training process {e.error_index} of {cfg.nproc} died ({how}); continue from the last "
                        f"checkpoint with: bptt train --resume --out {out}") from None
    except mp.ProcessRaisedException as e:
        _stop(ctx)
        last = [line for line in str(e).strip().splitlines() if line.strip()][-1]
        raise BPTTError(f"training process {e.error_index} of {cfg.nproc} failed: {last}") from None
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM as the command line turns it into
        _stop(ctx)
        raise type(e)(f"the {cfg.nproc} training processes are stopped; continue from the last checkpoint with: "
                      f"bptt train --resume --out {out}") from None
    except BaseException:
        _stop(ctx)
        raise
    _drain(reader, progress)
    return result_from_checkpoint(out, data)


def _stop(ctx) -> None:
    """Every rank still running: SIGTERM, then after STOP_GRACE seconds SIGKILL; waited for, so none is left."""
    import time

    procs = [p for p in (ctx.processes if ctx is not None else []) if p.is_alive()]
    for p in procs:
        p.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()


def _drain(reader, progress: Progress | None) -> None:
    while reader is not None and reader.poll():
        try:
            info = reader.recv()
        except EOFError:  # rank 0 has closed its end
            return
        progress(info)


def _leave_on_sigterm(signum, frame) -> None:
    # finally blocks and atomic writes unwind; the status says 'terminated' (128 + 15): the parent knows it was stopped
    raise SystemExit(128 + signal_number("SIGTERM"))


def signal_number(name: str) -> int:
    import signal

    return int(getattr(signal, name))


def _worker(rank: int, world: int, port: int, cfg: TrainConfig, out: str, resume: bool, data, writer) -> None:
    """One spawned rank: join the group through the parent's store, train, leave together.

    It ignores Ctrl-C (inherited: the parent decides), leaves on SIGTERM, and gets SIGTERM when the parent dies."""
    import signal

    import torch
    import torch.distributed as dist

    signal.signal(signal.SIGTERM, _leave_on_sigterm)
    _die_with_parent(signal.SIGTERM)
    torch.set_num_threads(_threads_per_rank(world))
    store = dist.TCPStore("127.0.0.1", port, is_master=False)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    try:
        train(cfg, out, resume=resume, progress=writer.send if writer is not None and rank == 0 else None, data=data)
        dist.barrier()  # nobody tears the group down while another rank still talks to it
    finally:
        dist.destroy_process_group()


def _die_with_parent(sig: int) -> None:
    """Linux: ``sig`` to this process when its parent dies (torch's own choice, SIGINT, is ignored here)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
