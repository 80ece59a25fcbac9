"""Save and load models and training checkpoints, atomically.

A model file ``model.npz`` holds the five parameters (w, w_x, w_h, b1, b2) as
arrays plus one JSON string ``__bptt__`` with the format marker, the
architecture (sizes, activations, dtype) and whatever the trainer adds
(task, hyperparameters, the [0, 1] scaling of a series).  One file, so the
parameters and their description can never disagree.

Every write goes to a temporary file in the target folder, is flushed and
fsynced, then renamed over the target with ``os.replace`` (atomic on POSIX):
a crash or an exception mid-write leaves the previous file as it was and no
temporary file behind.  Only a regular file is ever replaced: a symbolic link, FIFO, device,
socket or folder in the target's place is refused (one BPTTError line).

A `bptt train` run owns only what it wrote: every file it writes into --out is recorded, before
it replaces anything, in --out/.bptt-run.json (``MANIFEST``: each file's path, size and sha256),
and ``--force`` removes exactly the recorded files that still hold those bytes.  A file the user
wrote, replaced or edited (whatever its name), a link or a special file is never removed or
overwritten: a run that would have to is refused in one line before anything is written
(``RunFolder``, ``plan_run_files``).

An ensemble (``bptt train --ensemble K``, ``bptt.model.Ensemble``) is one model.npz too: the
same five arrays, each with a leading member axis (K, ...), and ``"ensemble": K`` in the JSON;
``load_model`` returns an ``Ensemble`` whose ``predict`` is the members' mean.  A file without
``"ensemble"`` is a single network, exactly as before.

A file that is not a zip archive, is truncated, lacks the marker, or holds
parameters of the wrong shapes (or another number of members than it says) raises
``BPTTError`` with one line.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .validation import (MAX_SIZE, BPTTError, check_choice, check_dtype, check_int,
                         check_scaling, format_bytes, memory_available)
from .engine import PARAM_NAMES
from .untrusted import file_kind, open_regular

FORMAT = "bptt-model"
CHECKPOINT_FORMAT = "bptt-checkpoint"
VERSION = 1
META_KEY = "__bptt__"


# ---------------------------------------------------------------- what a run owns
# What `bptt train` writes into --out (``run_outputs``): config.json, model.npz, metrics.json, checkpoint.npz
# (an ensemble: members/<k>/config.json and checkpoint.npz instead) and the plots loss/predictions/gradflow.FMT.
# Ownership, not names: every file a run writes is listed in --out/.bptt-run.json (``MANIFEST``) with its size and
# sha256, and --force removes exactly the listed files that still hold what bptt wrote; a file of the same name
# that the user wrote, replaced or edited is never removed or overwritten (the run is refused in one line).
MANIFEST = ".bptt-run.json"
MANIFEST_FORMAT = "bptt-run-files"
MANIFEST_MAX_BYTES = 1 << 20  # a run of MAX_ENSEMBLE members lists ~140 files: a few tens of kB
RUN_ENV = "BPTT_RUN_FOLDER"  # the --out folder of the run in progress (inherited by spawned data-parallel ranks)
# An ensemble's members train in --out/members/<k>/ (k = 0, 1, ...), each writing these files there.
MEMBERS_DIR = "members"
MEMBER_FILES = ("config.json", "checkpoint.npz")
RUN_STATE = ("config.json", "checkpoint.npz")  # what --resume reads (and then rewrites) in --out or members/<k>/
RUN_PLOT_STEMS = ("loss", "predictions", "gradflow")
MAX_ENSEMBLE = 64  # members of an ensemble, at most


def run_outputs(ensemble: int = 1, plot_format: str = "png") -> tuple[str, ...]:
    """The files (relative to --out) a `bptt train` run with ``ensemble`` members and ``--plots plot_format`` writes."""
    names = ["config.json", "model.npz", "metrics.json"]
    if ensemble > 1:
        names += [f"{MEMBERS_DIR}/{k}/{name}" for k in range(ensemble) for name in MEMBER_FILES]
    else:
        names.append("checkpoint.npz")
    if plot_format != "none":
        names += [f"{stem}.{plot_format}" for stem in RUN_PLOT_STEMS]
    return tuple(names)


def _lstat(path: str | os.PathLike) -> os.stat_result | None:
    """os.lstat, or None where nothing is (or a path component is not a folder)."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _valid_name(name: str) -> bool:
    return name not in ("", ".", "..", MANIFEST) and "/" not in name and "\0" not in name and "\\" not in name


def _valid_rel(rel: str) -> bool:
    """A run file's place relative to --out: NAME, or members/<k>/NAME (never '..', never absolute)."""
    parts = rel.split("/")
    if len(parts) == 1:
        return _valid_name(parts[0])
    return (len(parts) == 3 and parts[0] == MEMBERS_DIR and parts[1].isascii() and parts[1].isdigit()
            and _valid_name(parts[2]))


def _valid_dir(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] == MEMBERS_DIR and (len(parts) == 1 or
                                        (len(parts) == 2 and parts[1].isascii() and parts[1].isdigit()))


def _locate(root: Path, rel: str) -> tuple[Path, os.stat_result | None, str | None]:
    """(root/rel, its lstat or None, None), or where a folder on the way is something else (a symbolic link, a
    file): (root/rel, None, that folder relative to root).  Nothing is followed."""
    parts = rel.split("/")
    for i in range(1, len(parts)):
        sub = "/".join(parts[:i])
        st = _lstat(root / sub)
        if st is None:
            return root / rel, None, None
        if not stat.S_ISDIR(st.st_mode):
            return root / rel, None, sub
    return root / rel, _lstat(root / rel), None


def _sha256(path: Path) -> str | None:
    """sha256 of a regular file, read without following a link or blocking on a FIFO; None if it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        h = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
        return h.hexdigest()


def _version(size: int, digest: str, st: os.stat_result) -> dict[str, Any]:
    return {"size": size, "sha256": digest, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns}


def _holds_ours(path: Path, st: os.stat_result | None, versions: list[dict[str, Any]],
                verify: bool = True) -> dict | None:
    """The version in ``versions`` (what bptt wrote to this place) that ``path`` still holds, or None: a regular file
    of a recorded size and sha256 (``verify``), or while a run writes, also the very file it wrote (same inode,
    size and modification time)."""
    if st is None or not stat.S_ISREG(st.st_mode):
        return None
    same_size = [v for v in versions if v["size"] == st.st_size]
    if not same_size:
        return None
    if not verify:
        for v in same_size:
            if v["ino"] == st.st_ino and v["mtime_ns"] == st.st_mtime_ns:
                return v
    digest = _sha256(path)
    return next((v for v in same_size if v["sha256"] == digest), None)


def _empty_manifest() -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "version": VERSION, "files": {}, "dirs": []}


def read_manifest(out: str | os.PathLike) -> dict[str, Any] | None:
    """The record of the files bptt wrote into the run folder ``out`` (``MANIFEST``), checked; None if there is none.
    Anything else in its place (a link, a FIFO, a huge or damaged file) is one BPTTError line."""
    p = Path(out) / MANIFEST
    st = _lstat(p)
    if st is None:
        return None

    def bad(what: str) -> BPTTError:
        return BPTTError(f"{p}: {what}, not bptt's record of the files its runs wrote there; bptt will not guess "
                         "which files are its own: move it away (then --force replaces no file it finds there), "
                         "or give another --out")

    if not stat.S_ISREG(st.st_mode):
        raise bad(f"a {file_kind(st.st_mode)}")
    if st.st_size > MANIFEST_MAX_BYTES:
        raise bad(f"{st.st_size} bytes (a record holds at most {MANIFEST_MAX_BYTES})")
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            raw = f.read(MANIFEST_MAX_BYTES + 1)
        m = strict_json_loads(raw.decode("utf-8"))
    except OSError as e:
        raise BPTTError(f"{p}: cannot read it ({e.strerror or type(e).__name__}); check its permissions") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad("not JSON") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or m.get("version") != VERSION:
        raise bad("not a bptt-run-files record of version 1")
    files, dirs = m.get("files"), m.get("dirs")
    if not isinstance(files, dict) or not isinstance(dirs, list):
        raise bad("a record without its 'files' and 'dirs'")
    for rel, versions in files.items():
        if not _valid_rel(rel) or not isinstance(versions, list) or not 1 <= len(versions) <= 2:
            raise bad(f"a record with an entry {rel!r} bptt never writes")
        for v in versions:
            if not (isinstance(v, dict) and set(v) == {"size", "sha256", "ino", "mtime_ns"}
                    and all(type(v[k]) is int and v[k] >= 0 for k in ("size", "ino", "mtime_ns"))
                    and isinstance(v["sha256"], str) and len(v["sha256"]) == 64):
                raise bad(f"a record whose entry {rel!r} is damaged")
    if not all(isinstance(d, str) and _valid_dir(d) for d in dirs):
        raise bad("a record with a folder bptt never writes")
    return m


def _write_manifest(out: Path, m: dict[str, Any]) -> None:
    """Write the record, or remove it when it lists nothing."""
    p = out / MANIFEST
    if not m["files"] and not m["dirs"]:
        if _lstat(p) is not None:
            p.unlink()
        return
    m["dirs"] = sorted(set(m["dirs"]))
    _replace_atomically(p, (json.dumps(m, indent=1, sort_keys=True) + "\n").encode("utf-8"))


def _taken(out: Path, rel: str, st: os.stat_result | None, blocked: str | None, listed: bool) -> BPTTError:
    """The refusal for an output name that holds something this run may not overwrite."""
    fix = "move it away (or delete it yourself if you do not need it), or give another --out"
    if blocked is not None:
        kind = file_kind(os.lstat(out / blocked).st_mode)
        return BPTTError(f"--out {out}: {blocked} there is a {kind}, not a folder bptt made, and this run writes "
                         f"{rel} in it; bptt never writes through or over it: {fix}")
    assert st is not None
    if not stat.S_ISREG(st.st_mode):
        return BPTTError(f"--out {out}: {rel} there is a {file_kind(st.st_mode)}, not a file bptt wrote, and this run "
                         f"writes {rel}; bptt replaces only regular files it wrote itself: {fix}")
    why = "was changed since bptt wrote it" if listed else "was not written by bptt (it is not in the folder's " \
        f"record {MANIFEST})"
    return BPTTError(f"--out {out}: {rel} there {why}, and this run writes {rel}; bptt overwrites only its own "
                     f"files, even with --force: {fix}")


def plan_run_files(out: str | os.PathLike, outputs: tuple[str, ...] | list[str] = (), resume: bool = False
                   ) -> tuple[list[str], dict[str, Any] | None]:
    """Check that this run may write ``outputs`` (paths relative to ``out``) into the existing folder ``out``;
    nothing is touched.  Returns (the previous runs' files still holding what bptt wrote: what --force removes,
    the folder's record or None).

    An output's name must be free, or hold a file bptt wrote (listed in ``MANIFEST`` with its current size and
    sha256); with ``resume`` the run's state (config.json, checkpoint.npz, members/<k>/...) is the run's own as
    well.  Anything else (a user's file, an edited output, a link, a FIFO, a device) is one BPTTError line.
    """
    out = Path(out)
    m = read_manifest(out)
    files = m["files"] if m is not None else {}
    owned = []
    for rel, versions in files.items():
        path, st, blocked = _locate(out, rel)
        if blocked is None and _holds_ours(path, st, versions) is not None:
            owned.append(rel)
    for rel in outputs:
        path, st, blocked = _locate(out, rel)
        if blocked is None and (st is None or rel in owned):
            continue
        state = rel.rsplit("/", 1)[-1] in RUN_STATE
        if resume and state and blocked is None and st is not None and stat.S_ISREG(st.st_mode):
            continue  # --resume continues the run these files hold (they were read and checked as its state)
        raise _taken(out, rel, st, blocked, rel in files)
    return owned, m


def remove_run_files(out: str | os.PathLike, owned: list[str], m: dict[str, Any] | None) -> None:
    """Remove the previous runs' files ``owned`` (from ``plan_run_files``: each checked again just before it goes),
    then the members' folders those runs wrote into if that left them empty, and the record of what it removed.
    A file that is not bptt's (any more) stays, and so does every file the record does not list."""
    out = Path(out)
    if m is None:
        return
    for rel in owned:
        path, st, blocked = _locate(out, rel)
        if blocked is None and _holds_ours(path, st, m["files"][rel]) is not None:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:
                why = e.strerror or type(e).__name__
                raise BPTTError(f"--out {out}: cannot remove the previous run's {rel} ({why}); check the folder's "
                                "permissions") from None
        del m["files"][rel]
    for d in sorted(m["dirs"], key=lambda d: -d.count("/")):  # members/<k> before members
        _, st, blocked = _locate(out, d)  # never through a link
        if blocked is None and st is not None and stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(out / d)
            except OSError:
                pass  # not empty: what is left in it is not the run's
    m["files"] = {}  # what is still listed no longer holds what bptt wrote: it is not the run's any more
    m["dirs"] = []
    _write_manifest(out, m)


def adopt_run_state(out: str | os.PathLike, outputs: tuple[str, ...] | list[str]) -> None:
    """--resume: record the run's state files that are there (``RUN_STATE`` among ``outputs``) as the run's own,
    so that this run may rewrite them (a folder written before the record existed, or by the library)."""
    out = Path(out)
    m = read_manifest(out) or _empty_manifest()
    changed = False
    for rel in outputs:
        if rel.rsplit("/", 1)[-1] not in RUN_STATE:
            continue
        path, st, blocked = _locate(out, rel)
        if blocked is not None or st is None or not stat.S_ISREG(st.st_mode):
            continue
        if _holds_ours(path, st, m["files"].get(rel, []), verify=False) is None:
            digest = _sha256(path)
            if digest is not None:
                m["files"][rel] = [_version(st.st_size, digest, st)]
                changed = True
    if changed:
        _write_manifest(out, m)


def _run_place(path: Path) -> tuple[Path, str] | None:
    """(run folder, path relative to it) when ``path`` is a run file of the run in progress in this process (or the
    process that started it); else None."""
    root = os.environ.get(RUN_ENV)
    if not root:
        return None
    parent = os.path.realpath(path.parent)
    try:
        rel_parent = os.path.relpath(parent, root)
    except ValueError:
        return None
    if rel_parent == os.pardir or rel_parent.startswith(os.pardir + os.sep):
        return None
    rel = path.name if rel_parent == os.curdir else f"{Path(rel_parent).as_posix()}/{path.name}"
    return (Path(root), rel) if _valid_rel(rel) else None


def _record_write(root: Path, rel: str, path: Path, size: int, digest: str, st_new: os.stat_result) -> None:
    """Before ``path`` (root/rel) is replaced by the new file: refuse if what is there is not this run's; record
    the new version beside the one there (a crash between the two writes leaves either, both listed)."""
    m = read_manifest(root) or _empty_manifest()
    versions = m["files"].get(rel, [])
    _, st, blocked = _locate(root, rel)
    if blocked is not None or st is not None:
        there = None if blocked is not None else _holds_ours(path, st, versions, verify=False)
        if there is None:
            raise _taken(root, rel, st, blocked, rel in m["files"])
        versions = [there]
    else:
        versions = []
    m["files"][rel] = versions + [_version(size, digest, st_new)]
    parts = rel.split("/")
    m["dirs"] = list(m["dirs"]) + ["/".join(parts[:i]) for i in range(1, len(parts))]
    _write_manifest(root, m)


def _home_dirs() -> set[str]:
    """The home folders of this machine's people (and root's), resolved."""
    homes = {os.path.realpath(os.path.expanduser("~"))}
    try:
        import pwd

        homes |= {os.path.realpath(p.pw_dir) for p in pwd.getpwall()
                  if p.pw_dir and (p.pw_uid == 0 or 1000 <= p.pw_uid < 65534)}
    except (ImportError, OSError):
        pass
    return homes - {os.path.realpath("/")}


def check_out_path(out: str | os.PathLike) -> Path:
    """An --out folder that is not a symbolic link, the root folder or a home folder (refused whatever the options)."""
    out = Path(out)
    try:
        st = _lstat(out)
    except OSError:
        st = None  # creating it will say what is wrong
    if st is not None and stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(out)
        except OSError:
            target = "?"
        raise BPTTError(f"--out {out} is a symbolic link (to {target}); bptt never writes or removes files through a "
                        "link: give the folder itself, or another --out")
    real = os.path.realpath(out)
    if real == os.path.realpath("/"):
        raise BPTTError(f"--out {out} is the root folder {real}; a run needs a folder of its own: give e.g. "
                        "--out runs/NAME")
    if real in _home_dirs():
        raise BPTTError(f"--out {out} is a home folder ({real}); a run needs a folder of its own: give e.g. "
                        f"--out {os.path.join(real, 'runs', 'NAME')}")
    return out


def check_out_dir(out: str | os.PathLike, force: bool, can_resume: bool = False,
                  outputs: tuple[str, ...] | list[str] = ()) -> Path:
    """An --out folder that is new, empty, or (``force``) where this run's ``outputs`` are free or were written by
    bptt (``plan_run_files``); nothing is touched."""
    out = check_out_path(out)
    st = _lstat(out)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise BPTTError(f"{out} exists and is a {file_kind(st.st_mode)}; --out must be a folder")
    if st is not None and any(out.iterdir()):
        if not force:
            resume = ", or --resume to continue its run" if can_resume else ""
            raise BPTTError(f"{out} exists and is not empty; give a new --out, or --force to write beside what is there "
                            f"(it replaces only files an earlier bptt run wrote){resume}")
        plan_run_files(out, outputs)
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
    """``with RunFolder(out, force, resume, outputs):`` the --out folder, owned by this run alone.

    - ``out`` is never a symbolic link, the root folder or a home folder (``check_out_path``).
    - A lock (``fcntl.flock`` on the folder itself, released by the kernel even on SIGKILL, and
      leaving no file behind) refuses a second run into the same folder, naming the process
      that holds it.
    - The checks run again under the lock, so two runs racing for one new folder cannot both pass them.
    - A non-empty folder needs ``force`` (or ``resume``), and then each of this run's ``outputs`` (paths
      relative to ``out``, ``run_outputs``) must be free or hold a file bptt wrote (``plan_run_files``):
      anything else refuses the run before anything is written or removed.
    - ``force``: the previous runs' files that still hold what bptt wrote (listed in ``MANIFEST``) are removed
      before this run writes, so the folder never mixes two runs (a run killed midway leaves no stale model
      beside the new config); every other file in the folder is left alone.
    - ``resume``: the run's state files there (config.json, checkpoint.npz) are its own (``adopt_run_state``).
    - While the run is in progress (``RUN_ENV``, inherited by spawned ranks), every ``atomic_write_bytes`` into the
      folder is recorded in ``MANIFEST`` before it replaces a file, and refused if what is there is not the run's.
    - A run that fails before writing anything removes the folder if it created it.
    """

    def __init__(self, out: str | os.PathLike, force: bool = False, resume: bool = False,
                 outputs: tuple[str, ...] | list[str] = ()):
        self.out, self.force, self.resume, self.outputs = Path(out), force, resume, tuple(outputs)
        self._lock_fd: int | None = None
        self._created = False
        self._env: tuple[str | None] | None = None

    def _check(self) -> tuple[list[str], dict[str, Any] | None]:
        if self.resume:
            check_out_path(self.out)
            return plan_run_files(self.out, self.outputs, resume=True)
        check_out_dir(self.out, self.force, can_resume=True, outputs=self.outputs)
        if _lstat(self.out) is None or not any(self.out.iterdir()):
            return [], None
        return plan_run_files(self.out, self.outputs)

    def __enter__(self) -> Path:
        import fcntl

        out = self.out
        self._check()  # before anything is created
        try:
            self._created = _lstat(out) is None
            out.mkdir(parents=True, exist_ok=True)
            fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0))
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
            owned, manifest = self._check()  # again, now that no other run can write
            if self.resume:
                adopt_run_state(out, self.outputs)
            elif self.force:
                remove_run_files(out, owned, manifest)
            self._env = (os.environ.get(RUN_ENV),)
            os.environ[RUN_ENV] = os.path.realpath(out)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return out

    def __exit__(self, exc_type, exc, tb) -> None:
        import fcntl

        if self._env is not None:
            previous = self._env[0]
            if previous is None:
                os.environ.pop(RUN_ENV, None)
            else:
                os.environ[RUN_ENV] = previous
            self._env = None
        if self._lock_fd is None:
            return
        if exc_type is not None and self._created and not any(self.out.iterdir()):
            os.rmdir(self.out)  # nothing written: leave no trace of a failed start
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None


# ---------------------------------------------------------------- atomic writes
def current_umask() -> int:
    """The process's umask (read by setting and restoring it: Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace_atomically(path: Path, data: bytes, before_replace=None) -> None:
    """Temp file in path's folder + fsync + os.replace; ``before_replace(stat of the new file)`` may refuse."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            st = os.fstat(f.fileno())  # inode, size and mtime survive the rename
        if before_replace is not None:
            before_replace(st)
        os.replace(tmp, path)
    except OSError as e:
        raise BPTTError(f"{path}: cannot write it ({e.strerror or type(e).__name__}); "
                        "check that the folder exists, is writable and has space") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + os.replace.

    The file gets the mode a plain ``open(path, "w")`` would give (0666 minus the umask), also
    when it replaces an existing file; mkstemp's private 0600 would hide results from colleagues.
    Only a regular file is ever replaced: a symbolic link, FIFO, device, socket or folder at ``path`` is one
    BPTTError line (``os.replace`` would put a file in its place).  Inside a run folder in use
    (``RunFolder``) the write is recorded in its ``MANIFEST`` first, and refused if ``path`` holds a
    file that run did not write.  Any OSError (no such folder, a file where a folder should be,
    read-only, full disk) becomes one BPTTError line, and whatever was at ``path`` before is left as it was.
    """
    path = Path(path)
    try:
        st = _lstat(path)
    except OSError as e:
        raise BPTTError(f"{path}: cannot write it ({e.strerror or type(e).__name__}); "
                        "check that the folder exists, is writable and has space") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise BPTTError(f"{path} is a {file_kind(st.st_mode)}, not a regular file; bptt replaces only regular files: "
                        "give another path")
    place = _run_place(path)
    if place is None:
        _replace_atomically(path, data)
        return
    root, rel = place
    size, digest = len(data), hashlib.sha256(data).hexdigest()
    _replace_atomically(path, data, lambda st_new: _record_write(root, rel, path, size, digest, st_new))


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


# An npz of bptt's is stored, not compressed (np.savez): its members inflate to about the archive's size. A zip bomb
# (3 MB inflating to 3 GB) is refused from the sizes its directory declares, before anything is inflated.
NPZ_MAX_INFLATION = 16  # members may inflate to at most this many times the archive's bytes (plus NPZ_SLACK)
NPZ_SLACK = 1 << 20
NPZ_MAX_MEMBERS = 1024  # a checkpoint holds a few dozen arrays
META_MAX_BYTES = 16 << 20  # the JSON description (a checkpoint's loss history: tens of bytes per epoch)
NPY_DTYPE_KINDS = "fiubU"  # numbers, booleans and the JSON string; never objects (pickles)


def npz_limit() -> int:
    """The most bytes an npz file (and its inflated arrays) may hold here: half the memory available."""
    return memory_available() // 2


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One .npy member, its header checked against the bytes the archive declares before any array is allocated."""
    name = info.filename

    def bad(what: str) -> BPTTError:
        return BPTTError(f"{path}: member {name!r} {what}; the file is damaged or not a bptt file")

    with z.open(info) as m:
        try:
            version = np.lib.format.read_magic(m)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(m)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(m)
            else:
                raise bad(f"is .npy version {version}, not 1.0 or 2.0")
        except (ValueError, EOFError, SyntaxError, TypeError) as e:
            raise bad(f"has no valid .npy header ({type(e).__name__})") from None
        if dtype.hasobject or dtype.kind not in NPY_DTYPE_KINDS or dtype.fields is not None or dtype.subdtype:
            raise bad(f"holds {dtype}, not numbers")
        count = math.prod(int(n) for n in shape)
        nbytes = count * dtype.itemsize
        if m.tell() + nbytes != info.file_size:
            raise bad(f"header says shape {tuple(shape)} of {dtype} ({format_bytes(nbytes)}) but the member holds "
                      f"{format_bytes(info.file_size - m.tell())}")
        buf = bytearray(nbytes)
        if m.readinto(buf) != nbytes:
            raise bad("is shorter than its header says")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def load_arrays(path: str | os.PathLike, fmt: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read an npz written by ``save_arrays``; check its marker is ``fmt``.

    Bounded before anything is allocated: a regular file of at most ``npz_limit()`` bytes; members named
    ``*.npy`` whose declared sizes inflate to at most NPZ_MAX_INFLATION times the archive (no zip bomb); each
    member's .npy header (shape, dtype) consistent with its declared size (a header claiming TiB is refused, not
    allocated); numbers only (no pickled objects); the JSON description read and checked first."""
    path = Path(path)
    limit = npz_limit()
    fix = "give the folder or file that `bptt train` wrote"
    with open_regular(path, f"a {fmt} file", limit, fix) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            with zipfile.ZipFile(f) as z:
                infos = z.infolist()
                names = [i.filename for i in infos]
                if len(infos) > NPZ_MAX_MEMBERS:
                    raise BPTTError(f"{path}: holds {len(infos)} members, more than the {NPZ_MAX_MEMBERS} of any bptt "
                                    "file; it is not a bptt file")
                if len(set(names)) != len(names) or not all(n.endswith(".npy") for n in names):
                    odd = next(n for n in names if not n.endswith(".npy") or names.count(n) > 1)
                    raise BPTTError(f"{path}: member {odd!r} is not one .npy array; the file is damaged or not a "
                                    f"{fmt} file")
                inflated = sum(i.file_size for i in infos)
                if inflated > min(NPZ_MAX_INFLATION * size + NPZ_SLACK, limit):
                    raise BPTTError(f"{path}: its members would inflate {format_bytes(size)} to "
                                    f"{format_bytes(inflated)}, far more than any bptt file (stored, not compressed); "
                                    "it is damaged or not a bptt file (a zip bomb?)")
                meta_info = next((i for i in infos if i.filename == META_KEY + ".npy"), None)
                if meta_info is None:
                    raise BPTTError(f"{path}: not a {fmt} file (found 'no bptt marker'); give a file written by "
                                    "`bptt train`")
                if meta_info.file_size > META_MAX_BYTES:
                    raise BPTTError(f"{path}: its description holds {format_bytes(meta_info.file_size)}, more than the "
                                    f"{format_bytes(META_MAX_BYTES)} of any bptt file; it is damaged")
                raw = _read_member(z, meta_info, path)
                meta = _meta(raw, path, fmt)
                arrays = {i.filename[:-4]: _read_member(z, i, path) for i in infos if i is not meta_info}
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, KeyError, RuntimeError,
                NotImplementedError, zlib.error, ValueError) as e:
            if isinstance(e, BPTTError):
                raise
            raise BPTTError(f"{path}: not a readable .npz file ({type(e).__name__}); it is corrupt or not a bptt "
                            "file") from None
    return arrays, meta


def _meta(raw: np.ndarray, path: Path, fmt: str) -> dict[str, Any]:
    try:
        meta = strict_json_loads(str(raw)) if raw.dtype.kind == "U" and raw.ndim == 0 else None
    except (ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else "no bptt marker"
        raise BPTTError(f"{path}: not a {fmt} file (found {found!r}); give a file written by `bptt train`")
    if meta.get("version") != VERSION:
        raise BPTTError(f"{path}: {fmt} version {meta.get('version')!r} is not supported (this bptt reads version {VERSION})")
    return meta


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
        "loss": model.loss_name,
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
    from .losses import LOSSES

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
        # files written before the loss table have no "loss": they were trained on the squared error
        "loss": field("loss", lambda v: check_choice("loss", v, tuple(LOSSES))) if "loss" in meta else "squared_error",
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
            check_scaling(scaling["lo"], scaling["hi"], "scaling")
        except BPTTError as e:
            raise bad(str(e)) from None
    task_info = info.get("task_info", {})
    if not isinstance(task_info, dict):
        raise bad(f"task_info must be an object, got {task_info!r}")
    if task is not None:
        _check_task_info(task, scaling, task_info, bad)
    if "config" in info and not isinstance(info["config"], dict):
        raise bad(f"config must be an object, got {info['config']!r}")
    return info


def _check_task_info(task: str, scaling: Any, task_info: dict[str, Any], bad) -> None:
    """What the task's record says its model files hold: the scaling of scaled data, its task_info fields
    (each checked by the record's own check: this module knows no task by name)."""
    from .tasks import TASKS

    if task not in TASKS:
        raise bad(f"task {task!r} is not a bptt task (one of {', '.join(TASKS)})")
    record = TASKS[task]
    if record.scaled and scaling is None:
        raise bad(f"scaling is missing, but a {task} model is trained on data scaled to [0, 1]: without it "
                  "predictions would not be in the data's units")
    for name, check in record.info_fields.items():
        if name not in task_info:
            raise bad(f"task_info lacks {name!r}, which a {task} model needs")
        try:
            check(f"task_info.{name}", task_info[name])
        except BPTTError as e:
            raise bad(str(e)) from None


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

    try:
        m = RNN(*arch["sizes"], hidden_activation=arch["hidden_activation"], output_activation=arch["output_activation"],
                dtype=arch["dtype"], loss=arch["loss"])
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
