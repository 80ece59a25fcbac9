"""Model files: round trip, atomic writes (a failed or killed save keeps the old file), bad files."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import RNN, BPTTError
from bptt import io as bio


def _model(dtype=np.float64, seed=0):
    return RNN(3, 5, 2, hidden_activation="tanh", output_activation="identity", dtype=dtype, seed=seed)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_bitwise(tmp_path, dtype):
    m = _model(dtype)
    info = {"task": "csv", "scaling": {"lo": -2.5, "hi": 7.25}, "task_info": {"window": 4}, "note": "ünïcode"}
    bio.save_model(tmp_path / "model.npz", m, info)
    m2, info2 = bio.load_model(tmp_path)  # the folder works as well as the file
    assert info2 == info
    assert (m2.input_size, m2.hidden_size, m2.output_size) == (3, 5, 2)
    assert (m2.hidden_activation, m2.output_activation, m2.dtype) == ("tanh", "identity", np.dtype(dtype))
    for k, v in m.params().items():
        got = m2.params()[k]
        assert got.dtype == v.dtype and got.tobytes() == v.tobytes()
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(dtype)
    assert np.array_equal(m.predict(x), m2.predict(x))


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    bio.save_model(path, _model(seed=0), {"v": 1})
    before = path.read_bytes()

    def boom(fd):  # the data is in the temp file, the rename has not happened
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(BPTTError, match="model.npz: cannot write it \\(No space left on device\\); check") as e:
        bio.save_model(path, _model(seed=1), {"v": 2})
    assert "\n" not in str(e.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]  # the temp file is cleaned up
    _, info = bio.load_model(path)
    assert info == {"v": 1}


def test_failure_while_serialising_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    bio.save_model(path, _model(seed=0), {"v": 1})
    before = path.read_bytes()
    real = np.lib.format.write_array
    calls = []

    def write_some(*a, **k):  # fails on the third array, mid-archive
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("crash mid-write (simulated)")
        return real(*a, **k)

    monkeypatch.setattr(np.lib.format, "write_array", write_some)
    with pytest.raises(RuntimeError, match="simulated"):
        bio.save_model(path, _model(seed=1), {"v": 2})
    assert len(calls) == 3 and path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


def test_killed_save_keeps_previous_file(tmp_path):
    """A real SIGKILL after the new bytes are written to the temp file, before the rename."""
    path = tmp_path / "model.npz"
    bio.save_model(path, _model(seed=0), {"v": 1})
    before = path.read_bytes()
    code = (
        "import os, signal, sys\n"
        "from bptt import RNN, io as bio\n"
        "def die(fd): os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.fsync = die\n"
        f"bio.save_model({str(path)!r}, RNN(3, 5, 2, 'tanh', 'identity', seed=1), {{'v': 2}})\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode == -9, r.stderr.decode()
    assert path.read_bytes() == before
    leftovers = [f for f in os.listdir(tmp_path) if f != "model.npz"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.npz.")  # the dead process's temp file
    assert os.path.getsize(tmp_path / leftovers[0]) > 0
    _, info = bio.load_model(path)
    assert info == {"v": 1}


def test_corrupt_files(tmp_path):
    good = tmp_path / "good.npz"
    bio.save_model(good, _model(), {})
    data = good.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BPTTError, match="cut.npz: not a readable .npz file"):
        bio.load_model(cut)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(BPTTError, match="not a readable .npz file"):
        bio.load_model(junk)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(BPTTError, match="not a readable"):
        bio.load_model(empty)


def test_foreign_files(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, w=np.zeros((1, 1)), b=np.ones(3))
    with pytest.raises(BPTTError, match="not a bptt-model file .*no bptt marker"):
        bio.load_model(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BPTTError):
        bio.load_model(pickled)
    ck = tmp_path / "ck.npz"
    bio.save_arrays(ck, {"x": np.zeros(2)}, {"format": bio.CHECKPOINT_FORMAT, "version": bio.VERSION})
    with pytest.raises(BPTTError, match="not a bptt-model file \\(found 'bptt-checkpoint'\\)"):
        bio.load_model(ck)
    future = tmp_path / "future.npz"
    bio.save_arrays(future, {}, {"format": bio.FORMAT, "version": 99})
    with pytest.raises(BPTTError, match="version 99 is not supported"):
        bio.load_model(future)
    with pytest.raises(BPTTError, match="no such file"):
        bio.load_model(tmp_path / "missing.npz")
    txt = tmp_path / "model.npz"
    with zipfile.ZipFile(txt, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(BPTTError, match="not a bptt-model"):
        bio.load_model(txt)


def test_inconsistent_model_file(tmp_path):
    m = _model()
    meta = {"format": bio.FORMAT, "version": bio.VERSION, "input_size": 3, "hidden_size": 5, "output_size": 2,
            "hidden_activation": "tanh", "output_activation": "identity", "dtype": "float64", "info": {}}
    p = m.params()
    p["w_h"] = np.zeros((4, 4))
    bad = tmp_path / "bad.npz"
    bio.save_arrays(bad, p, meta)
    with pytest.raises(BPTTError, match="bad.npz: model file is inconsistent .*w_h must have shape \\(5, 5\\)"):
        bio.load_model(bad)
    del p["w_h"]
    bio.save_arrays(bad, p, meta)
    with pytest.raises(BPTTError, match="model file is missing parameters w_h"):
        bio.load_model(bad)
    meta2 = dict(meta, hidden_activation="softsign")
    bio.save_arrays(bad, m.params(), meta2)
    with pytest.raises(BPTTError, match="softsign"):
        bio.load_model(bad)


def test_atomic_write_json_replaces(tmp_path):
    p = tmp_path / "m.json"
    bio.atomic_write_json(p, {"a": 1})
    bio.atomic_write_json(p, {"a": 2.5, "b": [1, 2]})
    import json

    assert json.loads(p.read_text()) == {"a": 2.5, "b": [1, 2]}
    assert os.listdir(tmp_path) == ["m.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_users_umask_also_when_replacing(tmp_path, umask):
    path = tmp_path / "out.txt"
    path.write_text("old")
    os.chmod(path, 0o600)
    old = os.umask(umask)
    try:
        bio.atomic_write_text(path, "new")
        bio.save_model(tmp_path / "model.npz", _model(seed=0))
    finally:
        os.umask(old)
    for p in (path, tmp_path / "model.npz"):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~umask, (p, oct(os.stat(p).st_mode))


@pytest.mark.parametrize("where", ["parent_is_a_file", "no_such_folder", "read_only_folder", "proc"])
def test_unwritable_paths_are_one_line_errors(tmp_path, where):
    if where == "parent_is_a_file":
        (tmp_path / "f").write_text("x")
        path = tmp_path / "f" / "model.npz"
    elif where == "no_such_folder":
        path = tmp_path / "nope" / "model.npz"
    elif where == "read_only_folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        os.chmod(tmp_path, 0o500)
        path = tmp_path / "model.npz"
    else:
        path = Path("/proc/bptt-model.npz")
    with pytest.raises(BPTTError, match="cannot write it") as e:
        bio.save_model(path, _model(seed=0))
    assert "\n" not in str(e.value)
    if where == "read_only_folder":
        os.chmod(tmp_path, 0o700)


def test_run_folder_is_owned_by_one_run(tmp_path):
    out = tmp_path / "run"
    with bio.RunFolder(out) as d:
        (d / "config.json").write_text("{}")
        with pytest.raises(BPTTError, match=f"is in use by another bptt run \\(pid {os.getpid()}\\); wait") as e:
            with bio.RunFolder(out, force=True):
                pass
        assert "\n" not in str(e.value)
        assert (d / "config.json").exists()  # the refused run touched nothing
    with pytest.raises(BPTTError, match="exists and is not empty"):  # lock released, but the folder is taken
        with bio.RunFolder(out):
            pass


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under root (links not followed): mode and bytes."""
    return {str(p.relative_to(root)): (p.lstat().st_mode, p.read_bytes() if p.is_file() and not p.is_symlink() else b"")
            for p in sorted(root.rglob("*"))}


def _a_run(out: Path, names=("model.npz", "loss.png", "members/0/checkpoint.npz")) -> None:
    """What a run writes: each file through atomic_write_bytes inside its RunFolder (recorded in the manifest)."""
    with bio.RunFolder(out) as d:
        for name in names:
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            bio.atomic_write_bytes(d / name, f"bptt wrote {name}".encode())


def test_force_removes_the_files_the_record_lists_unchanged_and_nothing_else(tmp_path):
    out = tmp_path / "run"
    _a_run(out)
    m = bio.read_manifest(out)
    assert sorted(m["files"]) == ["loss.png", "members/0/checkpoint.npz", "model.npz"]
    assert m["dirs"] == ["members", "members/0"]
    (out / "loss.png").write_bytes(b"the user's own edit")  # edited: no longer what bptt wrote
    (out / "notes.txt").write_text("mine")
    (out / "metrics.json").write_text("mine, named like an output")
    with bio.RunFolder(out, force=True, outputs=("model.npz", "config.json")) as d:
        assert sorted(p.name for p in d.iterdir()) == ["loss.png", "metrics.json", "notes.txt"]
        assert (d / "loss.png").read_bytes() == b"the user's own edit"
        assert (d / "metrics.json").read_text() == "mine, named like an output"
    assert bio.read_manifest(out) is None  # nothing of bptt's is left there


def test_force_never_removes_files_without_a_record(tmp_path):
    """Names are not ownership: files named like a run's outputs, written by someone else, all stay."""
    out = tmp_path / "run"
    out.mkdir()
    old = ["model.npz", "metrics.json", "config.json", "checkpoint.npz", "loss.png", "gradflow.svg", "predictions.pdf",
           "loss.csv", "predictions.xlsx", "gradflow.py"]
    for name in old + ["notes.txt"]:
        (out / name).write_text("old")
    before = _tree(out)
    with bio.RunFolder(out, force=True, outputs=("model.npz.new",)) as d:  # writes beside them
        assert _tree(d) == before
    for name in ("model.npz", "loss.png", "gradflow.py"):
        with pytest.raises(BPTTError, match=f"{name} there was not written by bptt .*move it away") as e:
            with bio.RunFolder(out, force=True, outputs=(name,)):
                pass
        assert "\n" not in str(e.value)
    assert _tree(out) == before


@pytest.mark.parametrize("damage", ["not_json", "fifo", "symlink", "escapes", "huge"])
def test_a_damaged_or_hostile_record_is_refused_and_nothing_removed(tmp_path, damage):
    out = tmp_path / "run"
    _a_run(out)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"bptt wrote model.npz")  # the bytes of a run file: a forged record could match them
    rec = out / bio.MANIFEST
    if damage == "not_json":
        rec.write_text("{ not json")
    elif damage == "fifo":
        rec.unlink()
        os.mkfifo(rec)
    elif damage == "symlink":
        rec.unlink()
        rec.symlink_to(secret)
    elif damage == "escapes":
        m = json.loads(rec.read_text())
        m["files"]["../secret.txt"] = m["files"]["model.npz"]
        rec.write_text(json.dumps(m))
    else:
        rec.write_bytes(b" " * (bio.MANIFEST_MAX_BYTES + 1))
    before, secret_before = _tree(out), secret.read_bytes()
    with pytest.raises(BPTTError, match="not bptt's record of the files its runs wrote there") as e:
        with bio.RunFolder(out, force=True, outputs=("model.npz",)):
            pass
    assert "\n" not in str(e.value)
    assert _tree(out) == before and secret.read_bytes() == secret_before


def test_force_never_looks_through_a_members_link(tmp_path):
    out = tmp_path / "run"
    _a_run(out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0").mkdir()
    (elsewhere / "0" / "checkpoint.npz").write_bytes(b"bptt wrote members/0/checkpoint.npz")  # same bytes
    for p in sorted((out / "members").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (out / "members").rmdir()
    (out / "members").symlink_to(elsewhere)
    before = _tree(tmp_path)
    with pytest.raises(BPTTError, match="members there is a symbolic link, not a folder bptt made"):
        with bio.RunFolder(out, force=True, outputs=("members/0/checkpoint.npz",)):
            pass
    assert _tree(tmp_path) == before
    with bio.RunFolder(out, force=True, outputs=("model.npz",)):  # not an output of this run: left as it is
        pass
    assert (elsewhere / "0" / "checkpoint.npz").exists() and (out / "members").is_symlink()


def test_a_write_inside_a_run_folder_never_replaces_what_the_run_did_not_write(tmp_path):
    out = tmp_path / "run"
    with bio.RunFolder(out) as d:
        bio.atomic_write_bytes(d / "model.npz", b"one")
        bio.atomic_write_bytes(d / "model.npz", b"two")  # its own file: replaced
        (d / "loss.png").write_bytes(b"the user's, written during the run")
        with pytest.raises(BPTTError, match="loss.png there was not written by bptt"):
            bio.atomic_write_bytes(d / "loss.png", b"plot")
        assert (d / "loss.png").read_bytes() == b"the user's, written during the run"
    assert os.environ.get(bio.RUN_ENV) is None  # the run's folder is forgotten when it ends
    bio.atomic_write_bytes(out / "loss.png", b"outside a run: the caller's choice")


@pytest.mark.parametrize("kind", ["fifo", "symlink", "folder", "char_device"])
def test_atomic_write_replaces_only_a_regular_file(tmp_path, kind):
    path = tmp_path / "model.npz"
    target = tmp_path / "target"
    target.write_text("kept")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        path.symlink_to(target)
    elif kind == "folder":
        path.mkdir()
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod of a character device needs root")
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    mode = path.lstat().st_mode
    with pytest.raises(BPTTError, match="not a regular file; bptt replaces only regular files") as e:
        bio.save_model(path, _model())
    assert "\n" not in str(e.value)
    assert path.lstat().st_mode == mode and target.read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "target"]  # no temporary file left


def test_resume_keeps_everything_and_a_failed_start_leaves_no_folder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_text("ckpt")
    (out / "loss.png").write_text("a plot nobody recorded")
    with bio.RunFolder(out, resume=True, outputs=("checkpoint.npz", "model.npz")) as d:
        assert (d / "checkpoint.npz").read_text() == "ckpt"
        bio.atomic_write_bytes(d / "checkpoint.npz", b"next")  # the run's state: --resume rewrites it
    assert sorted(bio.read_manifest(out)["files"]) == ["checkpoint.npz"]
    with pytest.raises(BPTTError, match="loss.png there was not written by bptt"):  # not the run's state
        with bio.RunFolder(out, resume=True, outputs=("checkpoint.npz", "loss.png")):
            pass
    new = tmp_path / "new"
    with pytest.raises(RuntimeError):
        with bio.RunFolder(new):
            raise RuntimeError("bad task options")
    assert not new.exists()


def test_run_folder_under_a_file_or_proc_is_one_line_error(tmp_path):
    (tmp_path / "f").write_text("x")
    for out in (tmp_path / "f" / "run", Path("/proc/bptt-run")):
        with pytest.raises(BPTTError, match="cannot create it") as e:
            with bio.RunFolder(out):
                pass
        assert "\n" not in str(e.value)


GOOD_META = {"format": bio.FORMAT, "version": bio.VERSION, "input_size": 3, "hidden_size": 5, "output_size": 2,
             "hidden_activation": "tanh", "output_activation": "identity", "dtype": "float64",
             "info": {"task": "csv", "scaling": {"lo": 0.0, "hi": 2.0}, "task_info": {"window": 4, "bits": 3},
                      "config": {}}}


def _with(path, **changes):
    meta = json.loads(json.dumps(GOOD_META))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        d = meta
        for k in parents:
            d = d[k]
        if value is KeyError:
            del d[last]
        else:
            d[last] = value
    return meta


@pytest.mark.parametrize("change, field", [
    ({"hidden_size": "five"}, "hidden_size"), ({"hidden_size": 10**13}, "hidden_size"), ({"input_size": KeyError}, "input_size"),
    ({"hidden_activation": "gelu"}, "hidden_activation"), ({"dtype": "int8"}, "dtype"), ({"info": [1]}, "info"),
    ({"info__task": 3}, "info.task"), ({"info__scaling": {"hi": 1.0}}, "info.scaling"),
    ({"info__scaling": {"lo": 1.0, "hi": 1.0}}, "info.scaling"), ({"info__scaling": {"lo": "a", "hi": 1.0}}, "scaling.lo"),
    # each task's record checks its own task_info fields (binary-addition's bits, chars' vocab)
    ({"info__task": "binary-addition", "info__task_info": {"bits": "eight"}}, "task_info.bits"),
    ({"info__task": "binary-addition", "info__task_info": {"bits": 1000000}}, "task_info.bits"),
    ({"info__task": "binary-addition", "info__task_info": {"window": 3}}, "info.task_info lacks 'bits'"),
    ({"info__task": "chars", "info__task_info": {"vocab": "abca"}}, "task_info.vocab"),
    ({"info__task": "chars", "info__task_info": {"vocab": 7}}, "task_info.vocab"),
    ({"info__task": "chars", "info__task_info": {"length": 25}}, "info.task_info lacks 'vocab'"),
    ({"info__task_info": {"window": 0}}, "task_info.window"), ({"info__task_info": 7}, "info.task_info"),
    ({"info__config": "x"}, "info.config"),
    ({"info__scaling": None}, "info.scaling is missing"), ({"info__task": "weather"}, "info.task"),
    ({"info__task_info": {"bits": 3}}, "info.task_info lacks 'window'"),
])
def test_model_metadata_is_checked_field_by_field(tmp_path, change, field):
    m = bptt.RNN(3, 5, 2, "tanh", "identity", seed=0)
    bad = tmp_path / "bad.npz"
    bio.save_arrays(bad, m.params(), _with(bad, **change))
    with pytest.raises(BPTTError, match=f"bad.npz: model file (has no '?|field (info\\.)?){field}") as e:
        bio.load_model(bad)
    assert "\n" not in str(e.value)
    bio.save_arrays(bad, m.params(), GOOD_META)
    bio.load_model(bad)  # the untouched metadata loads


def test_metadata_with_non_finite_or_absurdly_nested_json_is_refused(tmp_path):
    m = bptt.RNN(3, 5, 2, "tanh", "identity", seed=0)
    for text in ('{"format": "bptt-model", "version": 1, "x": NaN}', '{"format": "bptt-model", "version": 1, "x": ' +
                 "[" * 5000 + "]" * 5000 + "}"):
        buf = {k: v for k, v in m.params().items()}
        buf[bio.META_KEY] = np.array(text)
        np.savez(tmp_path / "bad.npz", **buf)
        with pytest.raises(BPTTError, match="not a bptt-model file"):
            bio.load_model(tmp_path / "bad.npz")


def test_json_written_is_strict(tmp_path):
    bio.atomic_write_json(tmp_path / "m.json", {"a": float("inf"), "b": [1.0, float("nan")], "c": 2.5})
    assert bio.strict_json_loads((tmp_path / "m.json").read_text()) == {"a": None, "b": [1.0, None], "c": 2.5}
