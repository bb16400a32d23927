"""The layout rules of the README's Architecture section: it names every module of the tree; dependencies point
one way (the library imports no application code, scripts no tests); no two modules import each other."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("babi_dnc", "eval", "copytasks", "cli")


def architecture_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("## Architecture"):readme.index("Data flow:")]


def test_the_readme_architecture_names_every_module():
    words = set(re.findall(r"[\w.]+", architecture_section()))
    names = {word.removesuffix(".py") for word in words} | {word.rstrip(".") for word in words}
    unnamed = [str(path.relative_to(ROOT)) for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
               if path.name != "__init__.py" and path.stem not in names]
    assert unnamed == [], f"modules the README's Architecture section does not name: {unnamed}"


def test_the_library_imports_no_application_code():
    """babi_dnc imports neither eval, copytasks, cli, app nor tests (the one-way rule of the Architecture)."""
    def importing(files, tops: set[str]) -> list[str]:
        return [str(p.relative_to(ROOT)) for p in sorted(files) if {n.split(".")[0] for n in _imports(p)} & tops]

    offenders = importing((ROOT / "babi_dnc").rglob("*.py"), {"eval", "copytasks", "cli", "app", "tests"})
    scripts = importing((ROOT / "scripts").glob("*.py"), {"tests"})
    assert offenders == [] and scripts == []


def _imports(path: Path) -> set[str]:
    """The dotted names `path` imports, at any level of the file (relative imports resolved; `from P import
    x` names P.x where x is a module of P)."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.split(".")[:-1]  # of an __init__.py too: its own package
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            found |= {f"{target}.{a.name}" if (ROOT / Path(*target.split("."), f"{a.name}.py")).exists()
                      or (ROOT / Path(*target.split("."), a.name, "__init__.py")).exists() else target
                      for a in node.names}
    return found


def test_no_two_modules_import_each_other():
    """No import circle among the modules of the tree (a package's __init__ counts as a module, with the
    imports it re-exports)."""
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    graph = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in files}
    edges = {m: {t for t in _imports(p) if t in graph and t != m} for m, p in graph.items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in edges[m]:
            assert state.get(t) != 1, f"import circle: {' -> '.join(path[path.index(t):] + [t]) if t in path else t}"
            if t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def _sources() -> dict[str, ast.AST]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")] + [ROOT / "app.py"]
    files += list((ROOT / "scripts").glob("*.py"))
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text()) for p in files}


def test_one_path_for_each_thing():
    """A run is found and loaded only by runs.py; the run folder's log is named only by run_folder.py and read
    through its read_metrics; a model is called one way, forward(ids, state, mask) -> (y, state), and traced
    by its own .trace(...) (a `trace=` keyword would bring back outputs of two lengths and `len(out)` guards)."""
    defined: dict[str, list[str]] = {}
    log_named, trace_keywords = [], []
    for name, tree in _sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                defined.setdefault(node.name, []).append(name)
            elif isinstance(node, ast.Constant) and node.value == "metrics.jsonl":
                log_named.append(name)
            elif isinstance(node, ast.Call) and any(k.arg == "trace" for k in node.keywords):
                trace_keywords.append(f"{name}:{node.lineno}")
    for function in ("expand", "load_run", "find_runs"):
        assert defined[function] == ["babi_dnc/runs.py"], (function, defined[function])
    assert not {"expand_runs", "load_trained"} & set(defined)
    assert log_named == ["babi_dnc/run_folder.py"] and defined["read_metrics"] == ["babi_dnc/run_folder.py"]
    assert trace_keywords == []
