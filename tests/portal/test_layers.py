"""The direction rule of the house (docs/architecture.md, issue #13): imports point down the floors.

Floors, top to bottom:

    portal > reviews > rag > evals > gateway > prompts > llm > costs > {accounts, audit, guardrails, notifications, core}

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

ROOT = Path(__file__).resolve().parents[2]

FLOORS = [  # top first
    {"portal"},
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


def imports_of(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):  # every node: module level, functions, methods, nested blocks
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
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
