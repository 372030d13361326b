"""The layout's one rule: imports run downward only, and no two modules import each other.

The floors, from the parts that face the user down to the parts that do the
work (docs/design.md draws them):

    bot/__main__.py, bot/app.py    putting it together
    bot/handlers/                  the dialogs (aiogram routers)
    bot/operator/                  who may use the bot, what it keeps, /stats, health, logs
    bot/chat/                      how the bot speaks on Telegram
    bot/jobs/                      the job queue: no aiogram, nothing of chat/
    bot/settings.py, presets.py    plain settings and the preset list
    nets/                          the engine: never imports bot/ or aiogram

A module may import from its own floor or any floor below, never above. Every
import counts: at the top, inside functions, and under TYPE_CHECKING.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOORS = [("bot.__main__", "bot.app"), ("bot.handlers",), ("bot.operator",), ("bot.chat",), ("bot.jobs",),
          ("bot.settings", "bot.presets", "bot"), ("nets",)]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for folder in ("bot", "nets") for p in (ROOT / folder).rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project's modules that `path` imports, each by its full name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # "from bot.jobs import worker" imports the module bot.jobs.worker
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def third_party_imports(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def floor(module: str) -> int:
    for number, prefixes in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "bot") or module in prefixes:
            return number
    raise AssertionError(f"{module} is on no floor: add it to FLOORS and to docs/design.md")


def test_imports_run_downward_only():
    found = modules()
    wrong = []
    for name, path in found.items():
        for imported in imports_of(path, set(found)) - {name}:
            if floor(imported) < floor(name):
                wrong.append(f"{name} imports {imported}, a floor above it")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_two_modules_import_each_other():
    found = modules()
    graph = {name: imports_of(path, set(found)) - {name} for name, path in found.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a in graph.get(b, ()) and not (a.startswith(b + ".") or b.startswith(a + "."))})
    assert not pairs, pairs


def test_jobs_and_nets_never_import_aiogram():
    for name, path in modules().items():
        if name.startswith(("bot.jobs", "nets")):
            assert "aiogram" not in third_party_imports(path), f"{name} imports aiogram"


def test_every_module_says_what_it_is_for():
    missing = [name for name, path in modules().items()
               if path.read_text().strip() and not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, missing
