"""Test-only crash injection, loaded at interpreter start by processes whose PYTHONPATH starts with this
folder (``helpers.crash_env``): with BPTT_TEST_KILL_AFTER_EPOCH = "E" (or "K:E", member K of an ensemble),
bptt.train.train is wrapped so that the process sends itself SIGKILL right after epoch E is reported
done, as a crash or `kill -9` would (its checkpoint, if due, is written before the report).  In a
data-parallel group every rank dies, after a barrier.  Spawned ranks inherit the environment, so
they load this too.  Production code holds no hook."""

import os

SPEC = os.environ.get("BPTT_TEST_KILL_AFTER_EPOCH")

if SPEC:
    import signal

    import bptt.train as _train

    _member, _, _epoch = SPEC.rpartition(":")
    EPOCH, MEMBER = int(_epoch), (int(_member) if _member else None)
    _real = _train.train

    def _die() -> None:
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()  # rank 0 has reported (and checkpointed) before any rank dies
        except ImportError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)

    def train(cfg, out=None, resume=False, progress=None, data=None, backend=None):
        def report(info):
            if progress is not None:
                progress(info)
            if info.get("done") and info["epoch"] == EPOCH and info.get("member") == MEMBER:
                _die()

        return _real(cfg, out, resume=resume, progress=report, data=data, backend=backend)

    _train.train = train
