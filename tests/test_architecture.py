"""The tree is what docs/architecture.md says: every module listed exists and is listed, imports flow one way
between the layers, there are no cycles, no operation imports another, and tensor names live in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "xlmr_tools"
DOC = ROOT / "docs" / "architecture.md"

LAYERS = {
    "base": 0,
    "io": 1,
    "render": 2,
    "mapping": 3,
    "families": 4,
    "sources": 5,
    "compare": 6,
    "ops": 7,
    "cli": 8,
    "__init__": 9,
    "__main__": 9,
    "api": 9,
}
# The public API (`__init__`, `api`) and `__main__` (`python -m xlmr_tools`) sit on top, beside the CLI. `render` sits
# low (it needs only base and io: plain report dicts in, text out) but is used from the top only (test below).
BASE = {"_version", "errors", "interrupts", "progress", "model", "settings"}


def modules() -> dict[str, Path]:
    """{dotted name below xlmr_tools: file}."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        out[".".join(rel.parts)] = path
    return out


def layer(module: str) -> int:
    top = module.split(".")[0]
    return LAYERS["base"] if top in BASE else LAYERS[top]


def imports(path: Path) -> set[str]:
    """Every xlmr_tools module this file imports, anywhere in it (function level and TYPE_CHECKING included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xlmr_tools"):
            base = node.module.removeprefix("xlmr_tools").lstrip(".")
            for alias in node.names:
                child = f"{base}.{alias.name}" if base else alias.name
                found.add(child if child in modules() else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("xlmr_tools."):
                    found.add(alias.name.removeprefix("xlmr_tools."))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (use xlmr_tools.…)")
    return {m for m in found if m}


def listed_in_doc() -> set[str]:
    """Module names from the tree block of docs/architecture.md."""
    block = DOC.read_text().split("```")[1]
    names, folder = set(), ""
    for line in block.splitlines()[2:]:
        m = re.match(r"^  (\s*)(\S+)", line)
        if not m:
            continue
        indent, name = len(m.group(1)), m.group(2)
        if name.endswith("/"):
            folder = name.rstrip("/")
        elif name.endswith(".py"):
            stem = name.removesuffix(".py")
            names.add(f"{folder}.{stem}" if indent and folder else stem)
    return names


def test_every_module_is_listed_in_the_architecture_doc_and_exists():
    listed = listed_in_doc()
    assert listed - set(modules()) == set(), "listed in docs/architecture.md but missing"
    unlisted = {m for m in modules() if not m.endswith("__init__")} - listed
    assert unlisted == set(), "modules not described in docs/architecture.md"


def test_imports_flow_one_way():
    wrong = []
    for name, path in modules().items():
        for target in imports(path):
            if target == "" or (target not in modules() and f"{target}.__init__" not in modules()):
                continue
            if layer(target) > layer(name):
                wrong.append(f"{name} → {target}")
    assert wrong == []


def test_no_import_cycles():
    graph = {name: {t for t in imports(path) if t in modules()} for name, path in modules().items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " → ".join([*stack, node, nxt]))
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_no_operation_imports_another():
    for name, path in modules().items():
        if name.startswith("ops."):
            assert not {t for t in imports(path) if t.startswith("ops.")}, name


def test_renderers_are_used_by_the_cli_and_the_operations_only():
    """render/ turns reports into text for people (the terminal, the HTML report, the model card): the commands and
    the operations (convert writes the model card) use it, never the core below them."""
    users = {name for name, path in modules().items() for t in imports(path) if t.startswith("render")}
    assert {u.split(".")[0] for u in users} - {"cli", "ops", "render"} == set(), users


def test_tensor_names_live_in_the_weight_map():
    """The spellings of tensor names (and the rules about them) appear in mapping/weights.py (the tables) and in
    families/ (each family's own names) only."""
    needles = [
        re.compile(r"token_type_embeddings"),
        re.compile(r"[\"']roberta\."),
        re.compile(r"[\"']version[\"']"),
        re.compile(r"endswith\([\"']version"),
        re.compile(r"[\"']classification_heads\."),
    ]
    offenders = []
    for name, path in modules().items():
        if name == "mapping.weights" or name.startswith("families."):  # the tables, and each family's own names
            continue
        text = path.read_text()
        offenders += [f"{name}: {n.pattern}" for n in needles if n.search(text)]
    assert offenders == []


def test_no_assert_statements_in_the_package():
    """`python -O` strips asserts: a check that matters raises."""
    for name, path in modules().items():
        assert not any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(path.read_text()))), name


def _code_strings(path: Path) -> list[str]:
    """Every string constant of a module's code (f-string parts included), its docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs]  # fmt: skip


def test_no_module_outside_families_names_a_family():
    """Family knowledge lives in families/ (one module per family): no other module spells a registered family's
    name, its model_type or its transformers classes; they ask the registry (families.detect, for_model_type, of)."""
    from xlmr_tools.families.base import REGISTRY

    names = {f.name for f in REGISTRY} | {f.model_type for f in REGISTRY} | {f.base for f in REGISTRY}
    classes = re.compile(r"\b(" + "|".join(f.prefix for f in REGISTRY) + r")(For\w+|Config|Model)\b")
    offenders = []
    for name, path in modules().items():
        if name.startswith("families"):
            continue
        for text in _code_strings(path):
            if text in names or classes.search(text):
                offenders.append(f"{name}: {text!r}")
    assert offenders == []


def test_tests_and_benchmarks_share_code_as_packages_not_through_sys_path():
    """Shared code is imported as packages from the repository root (tests.helpers, tests.fixtures, benchmarks.*;
    pytest's `pythonpath`, `python -m benchmarks.NAME`): a sys.path edit would make a module importable under two
    names, or only when run from one place."""
    edits = re.compile(r"\bsys\.path\.(insert|append|extend)\b|\bsys\.path\s*[+]?=")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("tests", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "peers" not in path.parts and edits.search(path.read_text())
    ]
    assert offenders == []
