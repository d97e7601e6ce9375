"""The direction rule of the house (docs/architecture.md, issue #13): imports point down the floors.

Floors, top to bottom:

    portal > scorecards > slos > incidents > experiments > redteam > reviews > rag > evals > gateway > prompts > llm > costs > {accounts, audit, guardrails, notifications, core}

- An app may import only apps on lower floors.
- The base floor's apps (accounts, audit, guardrails, notifications) may import each other and `core`;
  `core` imports no app at all.
- `portal/` (the top: settings, URLs, API wiring, Celery, launcher, home page) may import anything;
  no app imports `portal`.

Every import counts, including those inside functions (a lazy import is still a dependency), read with
`ast` from the source, so the test needs no database and no running app.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FLOORS = [  # top first
    {"portal"},
    {"scorecards"},
    {"slos"},
    {"incidents"},
    {"experiments"},
    {"redteam"},
    {"reviews"},
    {"rag"},
    {"evals"},
    {"gateway"},
    {"prompts"},
    {"llm"},
    {"costs"},
    {"accounts", "audit", "guardrails", "notifications", "core"},
]
FLOOR = {name: len(FLOORS) - i for i, names in enumerate(FLOORS) for name in names}  # higher number = higher

# Upward imports not fixed yet, as "path:imported owner". This list may only shrink (issue #13).
KNOWN_EXCEPTIONS: set[str] = set()


def owner(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "portal":
        return "portal"
    if parts[0] == "apps" and len(parts) > 1:
        return parts[1]
    return None


def may_import(src: str, dst: str) -> bool:
    if src == dst or src == "portal":
        return True
    if dst == "portal" or src == "core":
        return False
    return FLOOR[dst] < FLOOR[src] or (FLOOR[dst] == FLOOR[src] == 1)


def type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`): never run, so no dependency."""
    hidden = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None) if isinstance(node, ast.If) else None
        if isinstance(test, ast.Name | ast.Attribute) and getattr(test, "id", getattr(test, "attr", "")) == \
                "TYPE_CHECKING":
            hidden.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return hidden


def imports_of(path: Path, *, names: bool = False, type_checking: bool = True):
    """(line, dotted name) of every import in the file, at any depth.

    `names`: for `from m import a`, yield `m.a` (a submodule, or a name inside `m`) instead of `m`, so the
    caller can tell `from apps.costs import alerts` from `from apps.costs import conf`.
    `type_checking=False`: leave out the imports under `if TYPE_CHECKING:`.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    hidden = set() if type_checking else type_checking_only(tree)
    for node in ast.walk(tree):  # every node: module level, functions, methods, nested blocks
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if names:
                for alias in node.names:
                    yield node.lineno, f"{node.module}.{alias.name}"
                continue
            yield node.lineno, node.module
            if node.module == "apps":  # `from apps import costs`
                for alias in node.names:
                    yield node.lineno, f"apps.{alias.name}"


def source_files():
    for top in ("apps", "portal"):
        yield from sorted((ROOT / top).rglob("*.py"))


def violations() -> list[str]:
    found = []
    for path in source_files():
        rel = path.relative_to(ROOT)
        src = owner(".".join(rel.with_suffix("").parts))
        if src is None:  # apps/__init__.py
            continue
        for lineno, module in imports_of(path):
            dst = owner(module)
            if dst is None or may_import(src, dst):
                continue
            if f"{rel}:{dst}" in KNOWN_EXCEPTIONS:
                continue
            found.append(f"{rel}:{lineno} ({src}, floor {FLOOR.get(src)}) imports {module} "
                         f"({dst}, floor {FLOOR.get(dst, 'top')})")
    return found


def test_every_app_is_on_a_floor():
    apps = {p.name for p in (ROOT / "apps").iterdir() if (p / "__init__.py").exists()}
    assert apps - set(FLOOR) == set(), "put the new app on a floor in FLOORS (and in docs/architecture.md)"


def test_imports_point_down_the_floors():
    found = violations()
    assert not found, "upward imports (see docs/architecture.md, the direction rule):\n" + "\n".join(found)


def test_the_known_exceptions_are_still_exceptions():
    """An exception fixed in the code must leave the list, so the list can only shrink."""
    live = set()
    for path in source_files():
        rel = path.relative_to(ROOT)
        src = owner(".".join(rel.with_suffix("").parts))
        for _, module in imports_of(path):
            dst = owner(module)
            if src and dst and not may_import(src, dst):
                live.add(f"{rel}:{dst}")
    assert live >= KNOWN_EXCEPTIONS, f"no longer needed, remove: {sorted(KNOWN_EXCEPTIONS - live)}"


def test_the_check_sees_function_level_and_upward_imports(tmp_path):
    """The checker itself: a lazy import inside a function and an app importing portal are both reported."""
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from portal.celery import app\n    import apps.reviews.models\n")
    found = list(imports_of(module))
    assert (4, "portal.celery") in found and (5, "apps.reviews.models") in found
    assert not may_import("accounts", "portal") and not may_import("costs", "llm")
    assert not may_import("core", "accounts") and may_import("audit", "accounts") and may_import("rag", "evals")
    assert may_import("portal", "reviews")


# --- views, forms, APIs and dashboards read through the owning app's selectors and services (issue #13) ---

ENTRY_MODULES = {"views.py", "forms.py", "api.py", "dashboards.py"}
PORTAL_ENTRY_MODULES = ["portal/views.py", "portal/api.py", "portal/home.py"]  # the top's pages and API wiring
# `apps.accounts.models` (User, Team, ApiToken, Role, ...) is the base layer's identity: every app's views may name it.
SHARED_MODELS = {"apps.accounts.models"}
# Cross-app model imports not fixed yet, as "path:imported models module". This list may only shrink.
KNOWN_MODEL_EXCEPTIONS: set[str] = set()


def entry_modules():
    for path in sorted((ROOT / "apps").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if path.name in ENTRY_MODULES and rel.parts[1] != "core":
            yield rel
    yield from (Path(p) for p in PORTAL_ENTRY_MODULES if (ROOT / p).exists())


def models_imported(path: Path):
    """Every `apps.<app>.models` module the file imports, at any depth, in any spelling."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        hits = {".".join(parts[:3]) for parts in (name.split(".") for name in names)
                if len(parts) >= 3 and parts[0] == "apps" and parts[2] == "models"}
        for module in sorted(hits):
            yield node.lineno, module


def foreign_model_imports() -> list[tuple[str, int, str]]:
    found = []
    for rel in entry_modules():
        src = owner(".".join(rel.with_suffix("").parts))
        for lineno, module in models_imported(ROOT / rel):
            if owner(module) != src and module not in SHARED_MODELS:
                found.append((str(rel), lineno, module))
    return found


def test_views_forms_apis_and_dashboards_use_no_other_apps_models():
    """A page, form, API endpoint or dashboard reads and writes another app's data only through that app's
    selectors and services, never its models (docs/architecture.md). Allowed everywhere: `apps.accounts.models`,
    since User, Team and ApiToken are the base layer's identity types that every request carries."""
    found = [f"{path}:{lineno} imports {module}" for path, lineno, module in foreign_model_imports()
             if f"{path}:{module}" not in KNOWN_MODEL_EXCEPTIONS]
    assert not found, "use the owning app's selectors/services instead:\n" + "\n".join(found)


def test_the_known_model_exceptions_are_still_exceptions():
    live = {f"{path}:{module}" for path, _, module in foreign_model_imports()}
    assert live >= KNOWN_MODEL_EXCEPTIONS, f"no longer needed, remove: {sorted(KNOWN_MODEL_EXCEPTIONS - live)}"


def test_the_model_check_sees_every_spelling(tmp_path):
    """The checker itself: module level, inside a function, `import apps.x.models` and `from apps.x import models`."""
    module = tmp_path / "views.py"
    module.write_text("from apps.llm.models import Model\n\ndef f():\n    import apps.costs.models\n"
                      "    from apps.rag import models\n    from apps.prompts.selectors import prompt_get\n")
    assert sorted(models_imported(module)) == [(1, "apps.llm.models"), (4, "apps.costs.models"),
                                              (5, "apps.rag.models")]


# --- no import circles inside an app (issue #13) ---------------------------------------------------------------
#
# Inside one app, the modules import each other in one direction too (e.g. costs: ledger at the bottom, budgets
# and alerts above it, services, then tasks at the top). Every import counts, function-level ones included
# (a lazy import only hides a circle); imports under `if TYPE_CHECKING:` do not (they never run).

# Apps whose circles other branches are breaking (issue #13). The coordinator empties this list after merging
# them; it may only shrink: the test fails for an app listed here that has no circle any more.
APPS_WITH_KNOWN_CIRCLES: set[str] = set()


def app_modules(app: str, root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file of every module of the app (`portal` included), migrations excluded."""
    base = root / "portal" if app == "portal" else root / "apps" / app
    found = {}
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        if "migrations" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found[".".join(parts)] = path
    return found


def module_graph(app: str, root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules of the same app it imports (a name resolves to its longest module prefix)."""
    modules = app_modules(app, root)
    graph = {}
    for name, path in modules.items():
        graph[name] = set()
        for _, imported in imports_of(path, names=True, type_checking=False):
            parts = imported.split(".")
            target = next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules),
                          None)
            if target and target != name:
                graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: each group of modules that reach each other (strongly connected, 2 or more), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(node: str) -> None:  # Tarjan; an app has a few dozen modules, recursion depth is no concern
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def all_apps(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in (root / "apps").iterdir() if (p / "__init__.py").exists()) + ["portal"]


def describe(graph: dict[str, set[str]], group: list[str]) -> str:
    members = set(group)
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & members))}" for m in group)


@pytest.mark.parametrize("app", all_apps())
def test_no_import_circles_inside_an_app(app):
    graph = module_graph(app)
    found = circles(graph)
    if app in APPS_WITH_KNOWN_CIRCLES:
        assert found, f"{app} has no import circle any more: remove it from APPS_WITH_KNOWN_CIRCLES"
    else:
        assert not found, "import circles (move the shared piece down, or invert with a registry):\n" + "\n".join(
            describe(graph, group) for group in found)


def test_the_circle_check_sees_function_level_imports_and_skips_type_checking(tmp_path):
    """The checker itself: a circle closed by a lazy import is found; one closed under TYPE_CHECKING is not."""
    app = tmp_path / "apps" / "shop"
    (app / "migrations").mkdir(parents=True)
    (app / "__init__.py").write_text("")
    (app / "orders.py").write_text("from apps.shop.models import Order\n")
    (app / "models.py").write_text("class Order:\n    pass\n")
    (app / "tasks.py").write_text("def run():\n    from apps.shop import orders\n")
    (app / "cart.py").write_text("from typing import TYPE_CHECKING\nfrom apps.shop import models\n\n"
                                 "if TYPE_CHECKING:\n    from apps.shop.orders import Order\n")
    (app / "migrations" / "0001_initial.py").write_text("from apps.shop import models\n")
    graph = module_graph("shop", tmp_path)
    assert graph["apps.shop.tasks"] == {"apps.shop.orders"} and graph["apps.shop.cart"] == {"apps.shop.models"}
    assert circles(graph) == []
    (app / "models.py").write_text("def total():\n    from apps.shop.tasks import run\n")
    assert circles(module_graph("shop", tmp_path)) == [["apps.shop.models", "apps.shop.orders", "apps.shop.tasks"]]


APPS_WITH_READY = sorted(p.parent.name for p in (ROOT / "apps").glob("*/apps.py") if "def ready" in p.read_text())


@pytest.mark.parametrize("app", APPS_WITH_READY)
def test_an_app_registers_in_one_place_its_hooks_module(app):
    """ADR 0095: what an app plugs in at start-up is in apps/<app>/hooks.py; ready() only calls hooks.register()."""
    tree = ast.parse((ROOT / "apps" / app / "apps.py").read_text())
    ready = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "ready")
    body = [ast.unparse(statement) for statement in ready.body]
    assert body == [f"from apps.{app} import hooks", "hooks.register()"], body
    assert (ROOT / "apps" / app / "hooks.py").exists()
    assert "def register() -> None" in (ROOT / "apps" / app / "hooks.py").read_text()
