"""The package layout stays readable: no import cycles, imports at the top of modules (except the
optional heavy dependencies listed here), and the method never imports the tooling."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "patchscaler_lite"
# Imports allowed inside functions: optional or heavy dependencies, imported on first use.
LAZY_OK = {"pyiqa", "pillow_jxl", "jxlpy"}
METHOD = ("config", "data", "errors", "image_io", "patches", "weights", "trainer", "grouping",
          "pipeline", "grm", "texture", "diffusion")
TOOLING = ("viz", "cli", "jobs")


def _modules() -> dict[str, Path]:
    """Dotted module name (without the package) -> file, e.g. 'grm.model', 'grm' (its __init__)."""
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(mod: str, node: ast.ImportFrom, alias: str, mods: dict) -> list[str]:
    """Internal modules an ImportFrom brings in (the module itself, or a submodule it names)."""
    pkg = mod.split(".") if (PKG / Path(*mod.split("."))).is_dir() else mod.split(".")[:-1]
    if node.level:
        base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
        target = ".".join(base + (node.module.split(".") if node.module else []))
    elif node.module and node.module.startswith("patchscaler_lite"):
        target = node.module[len("patchscaler_lite"):].lstrip(".")
    else:
        return []
    sub = f"{target}.{alias}".strip(".")
    return [sub] if sub in mods else ([target] if target in mods else [])


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                for a in node.names:
                    graph[m].update(t for t in _resolve(m, node, a.name, mods) if t != m)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in the graph as a list of modules, or None (iterative DFS, three colours)."""
    colour, stack_path = dict.fromkeys(graph, 0), []

    def visit(u):
        colour[u] = 1
        stack_path.append(u)
        for v in sorted(graph[u]):
            if colour[v] == 1:
                return stack_path[stack_path.index(v):] + [v]
            if colour[v] == 0 and (c := visit(v)):
                return c
        colour[u] = 2
        stack_path.pop()
        return None

    for u in sorted(graph):
        if colour[u] == 0 and (c := visit(u)):
            return c
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert graph["pipeline"] >= {"grm.model", "grouping", "texture.memory", "diffusion.sampling"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_imports_inside_functions_except_optional_heavy_dependencies():
    bad = []
    for m, p in _modules().items():
        for fn in ast.walk(ast.parse(p.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [(node.module or "").split(".")[0] if not node.level else "."]
                else:
                    continue
                bad += [f"{m}.{fn.name}: {n}" for n in names if n not in LAZY_OK]
    assert not bad, bad


@pytest.mark.parametrize("stage", METHOD)
def test_the_method_never_imports_the_tooling(stage):
    graph = import_graph()
    for m, deps in graph.items():
        if m == stage or m.startswith(stage + "."):
            assert not {d for d in deps if d.split(".")[0] in TOOLING}, m


def test_each_stage_of_the_paper_has_one_home():
    for name in ("grm/model.py", "grouping.py", "texture/memory.py", "diffusion/dit.py",
                 "diffusion/sampling.py", "pipeline.py", "config.py"):
        assert (PKG / name).is_file(), name
