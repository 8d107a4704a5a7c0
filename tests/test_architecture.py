"""The layering of DESIGN.md section 4, checked on the source (AST, no imports run):

- imports point only downward: entrypoints > services > core > infra (a module may import its own
  layer or below);
- no import cycle between packages;
- nothing but ``audit/db.py`` calls ``commit()`` (services never commit; the unit of work does);
- nothing but ``audit/ledger/service.py`` inserts audit events.

Each rule is checked against a planted violation too, so a checker that finds nothing cannot pass
for one that works. ARCHITECTURE.md explains the layers and the reasons for the few exceptions.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "audit"
SKIP = ("_alembic",)  # migrations: run by Alembic, never imported by the application

# --- the layers (DESIGN.md section 4, lowest first) ---------------------------------------------

INFRA, CORE, SERVICES, ENTRYPOINTS = 0, 1, 2, 3
LAYER_NAMES = {INFRA: "infra", CORE: "core", SERVICES: "services", ENTRYPOINTS: "entrypoints"}

# DESIGN: "infra: audit/db.py audit/config.py audit/security.py"; the others are the same kind
# (settings, engine and column types, migrations runner, deployment checks of the settings, the
# per-transaction memo of reads that a bulk import's batch reuses).
INFRA_MODULES = {
    "audit.batchreads",
    "audit.config",
    "audit.db",
    "audit.security",
    "audit.dbtypes",
    "audit.migrate",
    "audit.deployment",
    "audit.periodic",
}
# DESIGN: "core: audit/ledger/ audit/policy/ audit/codesets/ audit/models.py audit/errors.py". Also
# core: the acting principal (an identity value the policy and the ledger both speak of), input
# checks, the unit of work (DESIGN rule 1) and the database-role checks (they raise domain errors).
CORE_PACKAGES = {"audit.ledger", "audit.policy", "audit.codesets"}
CORE_MODULES = {
    "audit.models",
    "audit.errors",
    "audit.principal",
    "audit.inputs",
    "audit.uow",
    "audit.db_roles",
}
# Services that live in a core package because they are that package's own use cases: importing a
# code-set release (and re-checking the lines it judges) is authorised and recorded like any service.
SERVICES_IN_CORE = {"audit.codesets.service", "audit.codesets.recheck"}
# DESIGN: "entrypoints: audit/main.py, audit/cli.py, audit/web/"; with them every routes.py and
# *cli.py (HTTP and command-line mapping), the FastAPI dependencies, the OpenAPI helpers, the HTTP
# middleware, and the demo seeder (a CLI command's body).
ENTRY_MODULES = {"audit.main", "audit.cli", "audit.deps", "audit.openapi", "audit.middleware", "audit.demo"}


def layer_of(module: str) -> int:
    """The layer of a module of the audit package (every other module of a package is a service)."""
    last = module.rsplit(".", 1)[-1]
    if module in ENTRY_MODULES or last in ("routes", "cli") or last.endswith("_cli"):
        return ENTRYPOINTS
    if module.startswith("audit.web.") or module == "audit.web":
        return ENTRYPOINTS
    if module in INFRA_MODULES:
        return INFRA
    if module in SERVICES_IN_CORE:
        return SERVICES
    if module in CORE_MODULES or any(module == p or module.startswith(p + ".") for p in CORE_PACKAGES):
        return CORE
    if last == "models":  # a package's tables: parts of audit/models.py ("every table")
        return CORE
    return SERVICES


def unit_of(module: str) -> str:
    """The package a module belongs to for the cycle rule: ``audit.<name>``. A package's table
    module (``audit.user.models``) counts as part of ``audit.models``, which DESIGN says holds every
    table and which re-exports them."""
    parts = module.split(".")
    if len(parts) > 2 and parts[-1] == "models":
        return "audit.models"
    return ".".join(parts[:2])


# --- reading the source -------------------------------------------------------------------------


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: list[tuple[str, int]] = field(default_factory=list)  # (imported module, line)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load(base: Path = PACKAGE) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for path in sorted(base.rglob("*.py")):
        if any(part in SKIP for part in path.relative_to(base).parts):
            continue
        name = module_name(path, base)
        modules[name] = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    for module in modules.values():
        module.imports = list(_imports(module, modules))
    return modules


def _resolve(name: str, modules: dict[str, Module]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: Module, modules: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """Every audit module ``module`` imports, wherever the import statement stands (a function-level
    import is still a dependency). ``from audit.x import y`` names the submodule ``audit.x.y`` when
    there is one."""
    root = module.name.split(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == root and (target := _resolve(alias.name, modules)):
                    yield target, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != root:
                continue
            for alias in node.names:
                target = _resolve(f"{node.module}.{alias.name}", modules)
                if target:
                    yield target, node.lineno


# --- the rules ----------------------------------------------------------------------------------


def upward_imports(modules: dict[str, Module]) -> list[str]:
    found: list[str] = []
    for module in modules.values():
        mine = layer_of(module.name)
        for target, line in sorted(set(module.imports)):
            theirs = layer_of(target)
            if theirs > mine:
                found.append(
                    f"{_shown(module.path)}:{line}: {module.name} ({LAYER_NAMES[mine]}) imports "
                    f"{target} ({LAYER_NAMES[theirs]})"
                )
    return found


def package_cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected sets of packages, from the imports of every module below the entrypoints
    (an entrypoint may import anything beneath it; the layer rule keeps services from importing it)."""
    graph: dict[str, set[str]] = {}
    for module in modules.values():
        if layer_of(module.name) == ENTRYPOINTS:
            continue
        source = unit_of(module.name)
        graph.setdefault(source, set())
        for target, _ in module.imports:
            if layer_of(target) != ENTRYPOINTS and unit_of(target) != source:
                graph[source].add(unit_of(target))
    return [sorted(c) for c in _strongly_connected(graph) if len(c) > 1]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out


COMMIT_ALLOWED = {"audit.db"}
LEDGER_WRITER = {"audit.ledger.service"}
LEDGER_NAMES = {"LEDGER", "LedgerEvent"}
LEDGER_INSERT_SQL = re.compile(r"insert\s+into\s+[\"`]?ledger_event\b", re.IGNORECASE)


def commits_outside_db(modules: dict[str, Module]) -> list[str]:
    found = []
    for module in modules.values():
        if module.name in COMMIT_ALLOWED:
            continue
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "commit"
            ):
                found.append(f"{_shown(module.path)}:{node.lineno}: {ast.unparse(node)}")
    return found


def _names_ledger(node: ast.AST) -> bool:
    """An expression that is the ledger table: ``LEDGER``, ``x.LEDGER``, ``LedgerEvent.__table__``."""
    if isinstance(node, ast.Name):
        return node.id in LEDGER_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in LEDGER_NAMES or (node.attr == "__table__" and _names_ledger(node.value))
    return False


def ledger_inserts_outside_writer(modules: dict[str, Module]) -> list[str]:
    """``insert(LEDGER)``, ``LEDGER.insert()``, a ``LedgerEvent(...)`` row made to be added, or SQL
    text inserting into ledger_event, anywhere but the one writer."""
    found = []
    for module in modules.values():
        if module.name in LEDGER_WRITER:
            continue
        for node in ast.walk(module.tree):
            what = None
            if isinstance(node, ast.Call):
                func = node.func
                if (
                    isinstance(func, ast.Name)
                    and func.id == "insert"
                    and node.args
                    and _names_ledger(node.args[0])
                ):
                    what = "insert(ledger table)"
                elif isinstance(func, ast.Attribute) and func.attr == "insert" and _names_ledger(func.value):
                    what = "ledger_table.insert()"
                elif (
                    isinstance(func, ast.Name | ast.Attribute)
                    and _names_ledger(func)
                    and not (isinstance(func, ast.Attribute) and func.attr == "__table__")
                ):
                    what = "LedgerEvent(...) row"
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and LEDGER_INSERT_SQL.search(node.value)
            ):
                what = "SQL INSERT INTO ledger_event"
            if what:
                found.append(f"{_shown(module.path)}:{getattr(node, 'lineno', '?')}: {what}")
    return found


# --- the tests ----------------------------------------------------------------------------------

MODULES = load()


def test_the_package_is_read_and_every_module_has_a_layer() -> None:
    assert len(MODULES) > 100 and "audit.ledger.service" in MODULES
    assert layer_of("audit.ledger.service") == CORE and layer_of("audit.encounter.service") == SERVICES
    assert layer_of("audit.encounter.routes") == ENTRYPOINTS and layer_of("audit.db") == INFRA
    assert sum(len(m.imports) for m in MODULES.values()) > 500


def test_imports_point_only_downward() -> None:
    assert upward_imports(MODULES) == []


def test_no_import_cycle_between_packages() -> None:
    assert package_cycles(MODULES) == []


def test_only_db_py_commits() -> None:
    assert commits_outside_db(MODULES) == []


def test_only_the_ledger_service_inserts_events() -> None:
    assert ledger_inserts_outside_writer(MODULES) == []


def test_each_rule_catches_a_planted_violation(tmp_path: Path) -> None:
    """The same checks on a small package that breaks every rule once."""
    pkg = tmp_path / "audit"
    files = {
        "__init__.py": "",
        "db.py": "def scope(s):\n    s.commit()\n",
        "models.py": "class LedgerEvent: ...\n",
        "errors.py": "",
        "ledger/__init__.py": "",
        "ledger/service.py": "from audit.models import LedgerEvent\nLEDGER = LedgerEvent.__table__\n",
        "ledger/chain.py": "from audit.encounter import service\n",  # core imports a service
        "encounter/__init__.py": "",
        "encounter/service.py": (
            "from sqlalchemy import insert\n"
            "from audit.ledger.service import LEDGER\n"
            "from audit.delegation import service as other\n"
            "def f(session):\n"
            "    session.execute(insert(LEDGER), [])\n"
            "    session.commit()\n"
            "    session.execute('INSERT INTO ledger_event (seq) VALUES (1)')\n"
        ),
        "delegation/__init__.py": "",
        "delegation/service.py": "def g():\n    from audit.encounter.service import f\n",  # a cycle
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    planted = load(pkg)
    up = upward_imports(planted)
    assert len(up) == 1 and "audit.ledger.chain (core) imports audit.encounter.service (services)" in up[0]
    assert package_cycles(planted) == [["audit.delegation", "audit.encounter", "audit.ledger"]]
    commits = commits_outside_db(planted)
    assert len(commits) == 1 and "service.py:6" in commits[0]
    inserts = ledger_inserts_outside_writer(planted)
    assert len(inserts) == 2, inserts
    assert any("insert(ledger table)" in i for i in inserts) and any("SQL INSERT" in i for i in inserts)
