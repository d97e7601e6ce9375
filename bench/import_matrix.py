"""The import matrix between the apps and `portal/` (issue #13): `python -m bench.import_matrix [ROOT]`.

Counts import statements (function-level ones included, migrations excluded) from each app to each other app,
and the function-level imports in all. docs/architecture.md quotes its output; tests/portal/test_layers.py is
the check that keeps the direction, this is only the picture.

Then the import circles inside each app (groups of modules that reach each other, function-level imports
included, `if TYPE_CHECKING:` excluded), read with the module graph of tests/portal/test_layers.py, which
fails on any circle outside its APPS_WITH_KNOWN_CIRCLES.
"""

import ast
import collections
import pathlib
import sys

from tests.portal.test_layers import all_apps, circles, module_graph


def owner(module: str) -> str | None:
    """The app (or `portal`) a dotted module name belongs to; None for third-party modules."""
    parts = module.split(".")
    if parts[0] == "apps" and len(parts) > 1:
        return parts[1]
    if parts[0] == "portal":
        return "portal"
    return None


def imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module]
    return []


def measure(root: pathlib.Path) -> tuple[collections.Counter, int]:
    matrix: collections.Counter = collections.Counter()
    function_level = 0
    for path in sorted([*root.glob("apps/**/*.py"), *root.glob("portal/**/*.py")]):
        if "migrations" in path.parts:
            continue
        source = owner(".".join(path.relative_to(root).with_suffix("").parts))
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            for module in imported_modules(node):
                target = owner(module)
                if target and target != source:
                    matrix[(source, target)] += 1
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                function_level += sum(isinstance(sub, ast.Import | ast.ImportFrom) for sub in ast.walk(node))
    return matrix, function_level


def circles_per_app(root: pathlib.Path) -> dict[str, list[list[str]]]:
    """app -> its import circles (each a sorted list of modules)."""
    root = root.resolve()
    return {app: circles(module_graph(app, root)) for app in all_apps(root)}


def sizes(root: pathlib.Path, top: int = 5) -> tuple[list[tuple[int, str]], list[tuple[int, str]], int, int]:
    """The largest modules and longest functions (lines) under apps/ and portal/, migrations excluded, and
    how many functions there are and how many run over 50 lines."""
    files, functions = [], []
    for path in sorted([*root.glob("apps/**/*.py"), *root.glob("portal/**/*.py")]):
        if "migrations" in path.parts:
            continue
        text, name = path.read_text(), str(path.relative_to(root))
        files.append((len(text.splitlines()), name))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.append((node.end_lineno - node.lineno + 1, f"{name}::{node.name}"))
    files.sort(reverse=True)
    functions.sort(reverse=True)
    return files[:top], functions[:top], len(functions), sum(1 for length, _ in functions if length > 50)


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    matrix, function_level = measure(root)
    for (source, target), count in sorted(matrix.items()):
        print(f"{source:14} -> {target:14} {count}")
    print("function-level imports:", function_level)
    found = circles_per_app(root)
    print("import circles inside apps (circles, modules in them):")
    for app, groups in found.items():
        print(f"{app:14} {len(groups)} circles, {sum(len(g) for g in groups)} modules")
    print("import circles in all:", sum(len(g) for g in found.values()),
          "circles,", sum(len(m) for g in found.values() for m in g), "modules")
    largest, longest, count, over_50 = sizes(root)
    print("largest files:", ", ".join(f"{name} {lines}" for lines, name in largest))
    print("longest functions:", ", ".join(f"{name} {lines}" for lines, name in longest))
    print(f"functions: {count}, over 50 lines: {over_50}")


if __name__ == "__main__":
    main()
