"""Save and load models and training checkpoints, atomically.

A model file ``model.npz`` holds the five parameters (w, w_x, w_h, b1, b2) as
arrays plus one JSON string ``__bptt__`` with the format marker, the
architecture (sizes, activations, dtype) and whatever the trainer adds
(task, hyperparameters, the [0, 1] scaling of a series).  One file, so the
parameters and their description can never disagree.

Every write goes to a temporary file in the target folder, is flushed and
fsynced, then renamed over the target with ``os.replace`` (atomic on POSIX):
a crash or an exception mid-write leaves the previous file as it was and no
temporary file behind.

An ensemble (``bptt train --ensemble K``, ``bptt.model.Ensemble``) is one model.npz too: the
same five arrays, each with a leading member axis (K, ...), and ``"ensemble": K`` in the JSON;
``load_model`` returns an ``Ensemble`` whose ``predict`` is the members' mean.  A file without
``"ensemble"`` is a single network, exactly as before.

A file that is not a zip archive, is truncated, lacks the marker, or holds
parameters of the wrong shapes (or another number of members than it says) raises
``BPTTError`` with one line.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .validation import MAX_INT, MAX_SIZE, BPTTError, check_choice, check_dtype, check_int, check_number
from .engine import PARAM_NAMES

FORMAT = "bptt-model"
CHECKPOINT_FORMAT = "bptt-checkpoint"
VERSION = 1
META_KEY = "__bptt__"


# ---------------------------------------------------------------- atomic writes
# What `bptt train` writes into --out; --force removes exactly these (other files are the user's).
RUN_FILES = ("model.npz", "metrics.json", "config.json", "checkpoint.npz", "loss.*", "predictions.*", "gradflow.*")
# An ensemble's members train in --out/members/<k>/ (k = 0, 1, ...), each writing these files there.
MEMBERS_DIR = "members"
MEMBER_FILES = ("config.json", "checkpoint.npz")
MAX_ENSEMBLE = 64  # members of an ensemble, at most


def remove_run_files(out: Path) -> None:
    """Remove what a `bptt train` run writes into ``out`` (``RUN_FILES``, and its members' ``MEMBER_FILES``
    in members/<k>/, then those folders if that left them empty); every other file stays."""
    for pattern in RUN_FILES:
        for p in out.glob(pattern):
            if p.is_file():
                p.unlink()
    members = out / MEMBERS_DIR
    if not members.is_dir() or members.is_symlink():
        return
    for sub in members.iterdir():
        if not (sub.name.isdigit() and sub.is_dir() and not sub.is_symlink()):
            continue
        for name in MEMBER_FILES:
            if (sub / name).is_file():
                (sub / name).unlink()
        if not any(sub.iterdir()):
            sub.rmdir()
    if not any(members.iterdir()):
        members.rmdir()


def check_out_dir(out: str | os.PathLike, force: bool, can_resume: bool = False) -> Path:
    """An --out folder that is new, empty, or may be written over (force); nothing is touched."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BPTTError(f"{out} exists and is a file; --out must be a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        resume = ", or --resume to continue its run" if can_resume else ""
        raise BPTTError(f"{out} exists and is not empty; give a new --out, or --force to write over it{resume}")
    return out


def lock_owner(folder: Path) -> str:
    """'pid N' of the process holding a flock on ``folder`` (from /proc/locks), or 'another process'."""
    try:
        inode = folder.stat().st_ino
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
                    return f"pid {parts[4]}"
    except OSError:
        pass
    return "another process"


class RunFolder:
    """``with RunFolder(out, force, resume):`` the --out folder, owned by this run alone.

    - A lock (``fcntl.flock`` on the folder itself, released by the kernel even on SIGKILL, and
      leaving no file behind) refuses a second run into the same folder, naming the process
      that holds it.
    - The emptiness check runs under the lock, so two runs racing for one new folder cannot
      both pass it.
    - ``force``: the previous run's outputs (``RUN_FILES``, an ensemble's members/<k>/ files) are removed before this run writes,
      so the folder never mixes two runs (a run killed midway leaves no stale model beside the
      new config); other files in the folder are left alone.
    - A run that fails before writing anything removes the folder if it created it.
    """

    def __init__(self, out: str | os.PathLike, force: bool = False, resume: bool = False):
        self.out, self.force, self.resume = Path(out), force, resume
        self._lock_fd: int | None = None
        self._created = False

    def __enter__(self) -> Path:
        import fcntl

        out = self.out
        if not self.resume:
            check_out_dir(out, self.force, can_resume=True)  # before anything is created
        try:
            self._created = not out.exists()
            out.mkdir(parents=True, exist_ok=True)
            fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise BPTTError(f"--out {out}: cannot create it ({e.strerror or type(e).__name__}); "
                            "give a folder you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BPTTError(f"--out {out} is in use by another bptt run ({lock_owner(out)}); wait for it to finish "
                            "or give another --out") from None
        self._lock_fd = fd
        try:
            if not self.resume:
                check_out_dir(out, self.force, can_resume=True)  # again, now that no other run can write
                if self.force:
                    remove_run_files(out)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return out

    def __exit__(self, exc_type, exc, tb) -> None:
        import fcntl

        if self._lock_fd is None:
            return
        if exc_type is not None and self._created and not any(self.out.iterdir()):
            os.rmdir(self.out)  # nothing written: leave no trace of a failed start
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None


def current_umask() -> int:
    """The process's umask (read by setting and restoring it: Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + os.replace.

    The file gets the mode a plain ``open(path, "w")`` would give (0666 minus the umask), also
    when it replaces an existing file; mkstemp's private 0600 would hide results from colleagues.
    Any OSError (no such folder, a file where a folder should be, read-only, full disk) becomes one
    BPTTError line, and whatever was at ``path`` before is left as it was.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise BPTTError(f"{path}: cannot write it ({e.strerror or type(e).__name__}); "
                        "check that the folder exists, is writable and has space") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json_loads(text: str) -> Any:
    """json.loads without NaN/Infinity (not JSON); RecursionError for absurd nesting is the caller's."""
    return json.loads(text, parse_constant=_refuse_constant)


def json_safe(obj: Any) -> Any:
    """obj with every non-finite float replaced by None, so the file is strict JSON any reader accepts."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON (non-finite numbers written as null), atomically."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """npz of ``arrays`` plus the JSON ``meta`` under ``__bptt__``, written atomically.

    The archive is built in memory first, so a failure while serialising never
    touches the disk at all.
    """
    buf = io.BytesIO()
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[META_KEY] = np.array(json.dumps(meta, sort_keys=True))
    np.savez(buf, **payload)
    atomic_write_bytes(path, buf.getvalue())


def load_arrays(path: str | os.PathLike, fmt: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read an npz written by ``save_arrays``; check its marker is ``fmt``."""
    path = Path(path)
    if not path.is_file():
        raise BPTTError(f"{path}: no such file; give the folder or file that `bptt train` wrote")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
        raise BPTTError(f"{path}: not a readable .npz file ({type(e).__name__}); it is corrupt or not a bptt file") from None
    raw = arrays.pop(META_KEY, None)
    try:
        meta = strict_json_loads(str(raw)) if raw is not None else None
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else "no bptt marker"
        raise BPTTError(f"{path}: not a {fmt} file (found {found!r}); give a file written by `bptt train`")
    if meta.get("version") != VERSION:
        raise BPTTError(f"{path}: {fmt} version {meta.get('version')!r} is not supported (this bptt reads version {VERSION})")
    return arrays, meta


# ---------------------------------------------------------------- models
def save_model(path: str | os.PathLike, model, info: dict[str, Any] | None = None) -> None:
    """Write ``model`` (a ``bptt.RNN``, or a ``bptt.model.Ensemble``: its members' arrays stacked on a
    leading member axis, and ``"ensemble": K``) and JSON-able ``info`` to ``path`` (.npz), atomically."""
    members = getattr(model, "members", None)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "input_size": model.input_size,
        "hidden_size": model.hidden_size,
        "output_size": model.output_size,
        "hidden_activation": model.hidden_activation,
        "output_activation": model.output_activation,
        "dtype": model.dtype.name,
        "info": info or {},
    }
    if members is None:
        save_arrays(path, model.params(), meta)
        return
    meta["ensemble"] = len(members)
    save_arrays(path, {k: np.stack([m.params()[k] for m in members]) for k in PARAM_NAMES}, meta)  # (K, ...) each


def model_path(path: str | os.PathLike) -> Path:
    """A model folder (as `bptt train --out` writes) or a model .npz file."""
    p = Path(path)
    return p / "model.npz" if p.is_dir() else p


def check_model_meta(meta: dict[str, Any], path: Path) -> dict[str, Any]:
    """The architecture and ``info`` of a model file, checked field by field (one-line errors naming the field)."""
    from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS

    def field(name: str, check) -> Any:
        if name not in meta:
            raise BPTTError(f"{path}: model file has no {name!r}; re-train or re-save it")
        try:
            return check(meta[name])
        except BPTTError as e:
            raise BPTTError(f"{path}: model file field {e}; re-train or re-save it") from None

    out = {
        "sizes": (field("input_size", lambda v: check_int("input_size", v, 1, MAX_SIZE)),
                  field("hidden_size", lambda v: check_int("hidden_size", v, 1, MAX_SIZE)),
                  field("output_size", lambda v: check_int("output_size", v, 1, MAX_SIZE))),
        "hidden_activation": field("hidden_activation", lambda v: check_choice("hidden_activation", v, HIDDEN_ACTIVATIONS)),
        "output_activation": field("output_activation", lambda v: check_choice("output_activation", v, OUTPUT_ACTIVATIONS)),
        "dtype": field("dtype", lambda v: check_dtype(v)),
    }
    info = meta.get("info", {})
    if not isinstance(info, dict):
        raise BPTTError(f"{path}: model file field info must be an object, got {type(info).__name__}; re-train or re-save it")
    out["info"] = check_model_info(info, path)
    return out


def check_model_info(info: dict[str, Any], path: Path) -> dict[str, Any]:
    """What ``bptt predict``/``gradflow`` read from a model's info: task, scaling, task_info, config."""
    def bad(what: str) -> BPTTError:
        return BPTTError(f"{path}: model file field info.{what}; re-train or re-save it")

    task = info.get("task")
    if task is not None and not isinstance(task, str):
        raise bad(f"task must be a task name, got {task!r}")
    scaling = info.get("scaling")
    if scaling is not None:
        if not isinstance(scaling, dict) or set(scaling) != {"lo", "hi"}:
            raise bad(f"scaling must be {{'lo': number, 'hi': number}}, got {scaling!r}")
        try:
            lo, hi = check_number("scaling.lo", scaling["lo"]), check_number("scaling.hi", scaling["hi"])
        except BPTTError as e:
            raise bad(str(e)) from None
        if not hi > lo:  # type: ignore[operator]
            raise bad(f"scaling needs hi > lo, got lo={lo}, hi={hi}")
    task_info = info.get("task_info", {})
    if not isinstance(task_info, dict):
        raise bad(f"task_info must be an object, got {task_info!r}")
    limits = {"bits": (1, 20), "window": (1, MAX_INT)}  # bits: binary-addition's own limit
    for key, (lo_, hi_) in limits.items():
        if key in task_info:
            try:
                check_int(f"task_info.{key}", task_info[key], lo_, hi_)
            except BPTTError as e:
                raise bad(str(e)) from None
    if task is not None:
        _check_task_info(task, scaling, task_info, bad)
    if "config" in info and not isinstance(info["config"], dict):
        raise bad(f"config must be an object, got {info['config']!r}")
    return info


def _check_task_info(task: str, scaling: Any, task_info: dict[str, Any], bad) -> None:
    """What the task's record says its model files hold: the scaling of scaled data, its task_info fields."""
    from .tasks import TASKS

    if task not in TASKS:
        raise bad(f"task {task!r} is not a bptt task (one of {', '.join(TASKS)})")
    record = TASKS[task]
    if record.scaled and scaling is None:
        raise bad(f"scaling is missing, but a {task} model is trained on data scaled to [0, 1]: without it "
                  "predictions would not be in the data's units")
    for name in record.info_fields:
        if name not in task_info:
            raise bad(f"task_info lacks {name!r}, which a {task} model needs")


def load_model(path: str | os.PathLike):
    """Returns (RNN, info), or (``Ensemble``, info) for an ensemble's file.  ``path``: a model .npz or the
    folder holding ``model.npz``.

    Every field is checked (``check_model_meta``): a file with wrong types, missing keys or
    out-of-range values is one BPTTError line naming the field, never a wrong prediction.
    """
    p = model_path(path)
    arrays, meta = load_arrays(p, FORMAT)
    arch = check_model_meta(meta, p)
    missing = [k for k in PARAM_NAMES if k not in arrays]
    if missing:
        raise BPTTError(f"{p}: model file is missing parameters {', '.join(missing)}; re-train or re-save it")
    if "ensemble" in meta:
        return _load_ensemble(p, meta, arrays, arch)
    return _network(p, arch, {k: arrays[k] for k in PARAM_NAMES}), arch["info"]


def _network(p: Path, arch: dict[str, Any], params: dict[str, np.ndarray]):
    """The RNN of ``arch`` with ``params``, or one line saying the file is inconsistent."""
    from .model import RNN

    m = RNN(*arch["sizes"], hidden_activation=arch["hidden_activation"], output_activation=arch["output_activation"],
            dtype=arch["dtype"])
    try:
        m.set_params(**params)
    except BPTTError as e:
        raise BPTTError(f"{p}: model file is inconsistent ({e}); re-train or re-save it") from None
    return m


def _load_ensemble(p: Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], arch: dict[str, Any]):
    """(Ensemble, info) of an ensemble file: K members, every array (K, ...) of its member's shape."""
    from .model import Ensemble

    try:
        K = check_int("ensemble", meta["ensemble"], 1, MAX_ENSEMBLE)
    except BPTTError as e:
        raise BPTTError(f"{p}: model file field {e}; re-train or re-save it") from None
    for k in PARAM_NAMES:
        a = arrays[k]
        if a.ndim == 0 or a.shape[0] != K:
            raise BPTTError(f"{p}: model file says ensemble {K} but holds {k} of shape {a.shape}, not {K} members' "
                            f"(a leading axis of {K}); re-train or re-save it")
    return Ensemble([_network(p, arch, {k: arrays[k][i] for k in PARAM_NAMES}) for i in range(K)]), arch["info"]
