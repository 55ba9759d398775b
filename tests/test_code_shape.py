"""Shape rules read off the source with ``ast``: test modules never import each other
(shared helpers live in ``tests/*_helpers.py``, ``tests/fakes/`` or ``conftest.py``), and
no function in the scoring package grows past a screenful."""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
SCORING = ROOT / "detectors" / "scoring"
MAX_FUNCTION_LINES = 60


def _is_test_module(dotted: str) -> bool:
    """``tests.test_x`` (or deeper): a module pytest collects, not a helper."""
    parts = dotted.split(".")
    return len(parts) >= 2 and parts[0] == "tests" and parts[1].startswith("test_")


def imported_test_modules(source: str, package: str = "tests") -> list[str]:
    """The ``tests.test_*`` modules that ``source`` (a module of ``package``) imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if _is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .test_x import y, from . import test_x
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if _is_test_module(module):
                found.append(module)
            else:
                found += [
                    f"{module}.{a.name}"
                    for a in node.names
                    if _is_test_module(f"{module}.{a.name}")
                ]
    return found


def test_no_test_module_imports_another_test_module() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        package = ".".join(path.relative_to(ROOT).parent.parts)
        for module in imported_test_modules(path.read_text(), package):
            offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, (
        "test modules must not import each other; move the shared code into a helper "
        "module (tests/*_helpers.py, tests/fakes/, conftest.py):\n" + "\n".join(offenders)
    )


def test_the_import_check_sees_every_spelling() -> None:
    bad = {
        "from tests.test_autopsy import _agents": ["tests.test_autopsy"],
        "import tests.test_autopsy": ["tests.test_autopsy"],
        "import tests.test_autopsy as a": ["tests.test_autopsy"],
        "from tests import test_autopsy, analysis_helpers": ["tests.test_autopsy"],
        "from .test_autopsy import _agents": ["tests.test_autopsy"],
        "from . import test_autopsy": ["tests.test_autopsy"],
        "def f():\n    from tests.test_autopsy import x\n": ["tests.test_autopsy"],
    }
    for source, modules in bad.items():
        assert imported_test_modules(source) == modules, source
    good = (
        "from tests.analysis_helpers import GREEDY",
        "from tests.fakes.model_server import FakeModelServer",
        "from tests import conftest",
        "from aiohttp.test_utils import TestClient",
        "import test_utils",
        "x = 'from tests.test_autopsy import _agents'",
    )
    for source in good:
        assert imported_test_modules(source) == [], source


def function_lengths(source: str) -> Iterator[tuple[str, int, int]]:
    """(qualified name, first line, lines from ``def`` to the body's last line) of every
    function and method in ``source``, nested ones included."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, int, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                assert child.end_lineno is not None
                yield name, child.lineno, child.end_lineno - child.lineno + 1
                yield from walk(child, f"{name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(ast.parse(source), "")


def test_no_scoring_function_is_longer_than_a_screen() -> None:
    modules = sorted(SCORING.rglob("*.py"))
    assert len(modules) > 5, "the scoring package moved"
    too_long = [
        f"{path.relative_to(ROOT)}:{line} {name} is {length} lines"
        for path in modules
        for name, line, length in function_lengths(path.read_text())
        if length > MAX_FUNCTION_LINES
    ]
    assert not too_long, (
        f"functions in detectors/scoring/ stay within {MAX_FUNCTION_LINES} lines; "
        "split these:\n" + "\n".join(too_long)
    )


def test_function_lengths_name_methods_and_nested_functions() -> None:
    source = (
        "def top():\n"
        "    def inner():\n"
        "        return 1\n"
        "    return inner\n"
        "class C:\n"
        "    async def m(self):\n" + "        x = 1\n" * 61 + "        return x\n"
    )
    assert list(function_lengths(source)) == [
        ("top", 1, 4),
        ("top.<locals>.inner", 2, 2),
        ("C.m", 6, 63),
    ]
