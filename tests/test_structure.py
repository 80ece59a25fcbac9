"""The architecture rules that the file tree promises, checked on the source itself.

- no import cycle inside src/bptt, counting imports inside functions too (a lazy import
  hides a cycle, it does not remove it);
- no module reads another module's private names (``other._x``, ``from .m import _x``);
- ``import bptt`` stays light: it imports none of torch, jax, numba, sympy, matplotlib.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "bptt"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(SRC.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module or ""


def _imports(mods: dict[str, ast.Module]) -> dict[str, set[tuple[str, str | None]]]:
    """module -> {(imported module, imported name or None)} for imports of bptt modules."""
    out: dict[str, set[tuple[str, str | None]]] = {}
    for name, tree in mods.items():
        is_pkg = (SRC.parent / Path(*name.split("."))).is_dir()
        deps: set[tuple[str, str | None]] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, is_pkg, node)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add((sub, None) if sub in mods else (target, alias.name))
            elif isinstance(node, ast.Import):
                deps.update((a.name, None) for a in node.names)
        out[name] = {(m, n) for m, n in deps if m in mods and m != name}
    return out


def _edges(mods) -> dict[str, set[str]]:
    graph = {m: {d for d, _ in deps} for m, deps in _imports(mods).items()}
    for m in graph:  # importing a.b runs a/__init__ first, which is not an edge of interest
        graph[m].discard("bptt")
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_the_package():
    graph = _edges(_modules())
    # a package importing its own submodules (cli -> cli.train) is how packages are built
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".")}
    cycle = _find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_no_module_reads_another_modules_private_names():
    mods = _modules()
    offences = []
    for name, deps in _imports(mods).items():
        offences += [f"{name}: from {m} import {n}" for m, n in deps
                     if n and n.startswith("_") and not n.startswith("__")]
        aliases: dict[str, str] = {}
        for node in ast.walk(mods[name]):
            if isinstance(node, ast.ImportFrom):
                is_pkg = (SRC.parent / Path(*name.split("."))).is_dir()
                target = _resolve(name, is_pkg, node)
                for a in node.names:
                    if f"{target}.{a.name}" in mods:
                        aliases[a.asname or a.name] = f"{target}.{a.name}"
        for node in ast.walk(mods[name]):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                offences.append(f"{name}: {node.value.id}.{node.attr}")
    assert not offences, offences


# namedtuple's public API happens to start with an underscore; so does os._exit (end now, no clean-up)
NAMEDTUPLE_API = {"_asdict", "_fields", "_replace", "_make"}
PUBLIC_UNDERSCORED = {"os._exit"}


def test_no_object_private_attributes_read_from_outside():
    """``obj._x`` only as ``self._x``/``cls._x``: what another object needs has a public name."""
    offences = []
    for p in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.attr not in NAMEDTUPLE_API and ast.unparse(node) not in PUBLIC_UNDERSCORED
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                offences.append(f"{p.relative_to(SRC)}:{node.lineno}: {ast.unparse(node)}")
    assert not offences, offences


@pytest.mark.parametrize("heavy", ["torch", "jax", "numba", "sympy", "matplotlib"])
def test_import_bptt_stays_light(heavy):
    code = f"import sys, bptt, bptt.cli; print({heavy!r} in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_engine_docstring_names_real_tests():
    """engine.py lists every implementation of the recurrence with the test pinning it: those tests exist."""
    import re

    doc = ast.get_docstring(ast.parse((SRC / "engine.py").read_text(encoding="utf-8")))
    tests_dir = SRC.parents[1] / "tests"
    current = None
    named = []
    for path, names in re.findall(r"(tests/test_\w+\.py)?::(test_\w+)", doc or ""):
        current = path or current
        named.append((current, names))
    assert len(named) >= 15
    for path, name in named:
        source = (tests_dir.parent / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name} named in engine.py does not exist"


# The modules whose numba-compiled code has other modules' code compiled into it, and those modules.  numba
# drops a cached kernel only when its own file changes, so each carries a stamp of these sources: a change to
# them must change the stamp, hence the file, hence the cache.  (floatmath's exp once changed while
# kernels.py did not, and the cached float64 kernels kept the old exp: other bits than a fresh clone's.)
COMPILED_INTO = {"_optim_compiled": ["optim"],
                 "kernels": ["_floatmath_compiled", "_optim_compiled", "_products_compiled", "optim"],
                 "curvature_kernels": ["_floatmath_compiled", "_products_compiled"],
                 "limits": ["_floatmath_compiled"]}


@pytest.mark.parametrize("module", sorted(COMPILED_INTO))
def test_numba_cache_stamps_follow_the_sources_compiled_in(module):
    import hashlib
    import importlib

    src = Path(__file__).resolve().parents[1] / "src" / "bptt"
    h = hashlib.sha256()
    for dep in sorted(COMPILED_INTO[module]):
        h.update(dep.encode() + b"\0" + (src / f"{dep}.py").read_bytes())
    want = h.hexdigest()[:16]
    got = importlib.import_module(f"bptt.{module}").NUMBA_CACHE_STAMP
    assert got == want, (f"src/bptt/{module}.py: set NUMBA_CACHE_STAMP = \"{want}\" (was \"{got}\"): the sources compiled "
                         f"into its kernels changed, and numba's cache would keep the old code")


def test_every_module_importing_another_compiled_module_has_a_stamp():
    """A new import of a compiled module (or a new compiled module importing one) needs its entry above."""
    import re

    src = Path(__file__).resolve().parents[1] / "src" / "bptt"
    for path in src.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "cache=True" not in text:
            continue
        imported = set(re.findall(r"^from \.(_\w+_compiled|kernels|curvature_kernels|optim) import", text, re.M))
        assert imported <= set(COMPILED_INTO.get(path.stem, [])), (path.name, imported)
