"""The package's shape as tests (STYLE.md points 1 and 13): no import cycle, layers import only downward, a
small package root, no module over 400 lines, records that are msgspec Structs (cheap to define on every
delivered mail), and the exit codes' start-up-cheap copies agree with exits.py.

The rules read the source with `ast` (tests/support/imports.py) and never import it, so imports inside
functions and under `if TYPE_CHECKING:` count. Each check is a function returning its violations, one line
each; the `test_check_*` tests at the end run them on small synthetic trees, so a check that could never
fail would itself fail a test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from support.imports import Graph, cycles, import_graph

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "lib" / "email2ticket"

# STYLE.md point 13, top to bottom. A top-level package or root module missing here is a failure, so a new
# one has to be placed deliberately.
LAYERS: dict[str, int] = {
    "cli": 1,  # entrances: the pipe command and the admin command
    "service": 1,  # entrances: the resident service, LMTP, the thin client
    "web": 1,  # entrances: the web admin (an optional extra; delivery never imports it)
    "delivery": 2,
    "ops": 2,
    "rules": 3,
    "store": 3,
    "outbound": 3,
    "mail": 4,
    "reply": 4,
    "auth": 4,
    "signals": 4,
    "config": 5,
    "exits": 5,  # root module: the exit-code contract
    "errors": 5,  # root module: one line naming any error (imports nothing: the thin client uses it)
    "log": 5,  # root module: where the log lines go
    "display": 5,  # root module: mail-derived text made safe for terminals, JSON and logs
    "__init__": 5,  # lib/email2ticket/__init__.py, if ever: every import of the package would run it
}

# The one exception list to "same layer is fine": outside cli itself only these may import cli. The thin
# client falls back to the pipe command (cli.deliver.main), and the service parses the pipe's argv.
CLI_IMPORTERS = frozenset({"service"})

MAX_ROOT_MODULES = 8  # .py files directly in lib/email2ticket/ besides __init__.py
MAX_LINES = 400
LONG_MODULES_ALLOWED = ("store/migrations/", "reply/separator_list.py")  # generated migrations, built-in data


def _top(module: str) -> str:
    """The top-level package (or root module) a dotted module name belongs to; the root package is __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


# --- the checks: each returns its violations, one readable string each ---------------------------------


def unresolved_imports(graph: Graph) -> list[str]:
    """Imports of the package that name no file: the other checks cannot see where they lead."""
    return [f"{graph.path(u.source)}:{u.line}: {u.name}: no such module in the package" for u in graph.unresolved]


def layer_violations(graph: Graph, layers: dict[str, int] = LAYERS) -> list[str]:
    """Imports that go up a layer, imports of cli from outside CLI_IMPORTERS, and files placed in no layer."""
    found = [
        f"{graph.path(m)}: {_top(m)} is in no layer: add it to LAYERS in tests/test_structure.py"
        for m in graph.modules
        if _top(m) not in layers
    ]
    for edge in graph.edges:
        source, target = _top(edge.source), _top(edge.target)
        if source not in layers or target not in layers:
            continue  # reported above
        where = f"{graph.path(edge.source)}:{edge.line}: imports {edge.target}"
        if layers[target] < layers[source]:
            found.append(f"{where} (layer {layers[target]} {target}) from layer {layers[source]} {source}")
        elif target == "cli" and source != "cli" and source not in CLI_IMPORTERS:
            found.append(f"{where}: only {', '.join(sorted(CLI_IMPORTERS))} may import cli")
    return found


def root_modules(package_dir: Path) -> list[str]:
    """The root's modules: each one is a concept that found no package, so their number is capped."""
    return sorted(p.name for p in package_dir.glob("*.py") if p.name != "__init__.py")


def long_modules(package_dir: Path) -> list[str]:
    """Modules over MAX_LINES lines, which hold more than one concept (STYLE.md 1); data and migrations aside."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir).as_posix()
        if relative.startswith(LONG_MODULES_ALLOWED):
            continue
        count = len(path.read_text(encoding="utf-8").splitlines())
        if count > MAX_LINES:
            found.append(f"{path.relative_to(package_dir.parent)}: {count} lines (at most {MAX_LINES})")
    return found


# --- the rules, on the real package ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(PACKAGE)


def test_every_import_of_the_package_names_a_file(graph: Graph) -> None:
    """An import the graph cannot resolve would escape every rule below."""
    found = unresolved_imports(graph)
    if found:
        pytest.fail(f"{len(found)} import(s) of no file:\n" + "\n".join(found), pytrace=False)


def test_no_import_cycle(graph: Graph) -> None:
    found = cycles(graph)
    if found:
        pytest.fail(f"{len(found)} import cycle(s):\n" + "\n".join(found), pytrace=False)


def test_layers_import_only_downward(graph: Graph) -> None:
    found = layer_violations(graph)
    if found:
        pytest.fail(f"{len(found)} import(s) against the layers (STYLE.md 13):\n" + "\n".join(found), pytrace=False)


def dataclasses_defined(package_dir: Path) -> list[str]:
    """Classes made with @dataclass: the package's records are msgspec Structs, because the pipe defines its
    records on every delivered mail and a frozen dataclass costs some thirty times as much to define."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                found.append(f"{path.relative_to(package_dir.parent)}:{node.lineno}: {node.name} is a dataclass")
    return found


def test_package_root_is_small() -> None:
    found = root_modules(PACKAGE)
    if len(found) > MAX_ROOT_MODULES:
        pytest.fail(
            f"{len(found)} modules in lib/email2ticket/ (at most {MAX_ROOT_MODULES}): {', '.join(found)}", pytrace=False
        )


def test_no_module_over_400_lines() -> None:
    found = long_modules(PACKAGE)
    if found:
        pytest.fail(f"{len(found)} module(s) too long:\n" + "\n".join(found), pytrace=False)


def test_records_are_structs_not_dataclasses() -> None:
    found = dataclasses_defined(PACKAGE)
    if found:
        pytest.fail("use msgspec.Struct (README, Layout):\n" + "\n".join(found), pytrace=False)


def test_thin_client_exit_codes_are_the_contracts() -> None:
    """client.py keeps its own copy of the codes so that it starts without importing exits.py."""
    from email2ticket.exits import ExitCode
    from email2ticket.service.client import EX_TEMPFAIL, EXIT_CODES

    assert sorted(EXIT_CODES) == sorted(int(code) for code in ExitCode)
    assert len(set(EXIT_CODES)) == len(EXIT_CODES)
    assert EX_TEMPFAIL == ExitCode.TEMPFAIL


def test_deliver_shim_falls_back_to_tempfail() -> None:
    """bin/email2ticket-deliver exits with a literal when the package cannot even be imported."""
    from email2ticket.exits import ExitCode

    tree = ast.parse((REPO / "bin" / "email2ticket-deliver").read_text(encoding="utf-8"))
    literal_exits = [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and ast.unparse(node.func) == "sys.exit"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]
    assert literal_exits == [ExitCode.TEMPFAIL]


# --- the checks can fail: each one on a small tree that breaks it ------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "email2ticket"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_check_finds_cycles_through_functions_type_checking_and_reexports(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "exits.py": "",
            "mail/__init__.py": "from .message import parse\n",  # re-export
            "mail/message.py": "def parse():\n    from ..rules.chain import decide\n",  # inside a function
            "rules/__init__.py": "",
            "rules/chain.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..mail import parse\n",
            "store/__init__.py": "",
            "store/a.py": "import email2ticket.store.b\n",  # absolute, same package
            "store/b.py": "from . import a\n",
            "store/c.py": "from .c import x\n",  # a self-import
            "store/d.py": "from . import a, b\nfrom .. import exits\n",  # depends on a cycle, is in none
        },
    )
    found = cycles(import_graph(package))
    assert found == [
        "cycle among 3 file(s): email2ticket/mail/__init__.py, email2ticket/mail/message.py, "
        "email2ticket/rules/chain.py\n"
        "    email2ticket/mail/__init__.py:1 -> email2ticket/mail/message.py\n"
        "    email2ticket/mail/message.py:2 -> email2ticket/rules/chain.py\n"
        "    email2ticket/rules/chain.py:3 -> email2ticket/mail/__init__.py",
        "cycle among 2 file(s): email2ticket/store/a.py, email2ticket/store/b.py\n"
        "    email2ticket/store/a.py:1 -> email2ticket/store/b.py\n"
        "    email2ticket/store/b.py:1 -> email2ticket/store/a.py",
        "cycle among 1 file(s): email2ticket/store/c.py\n    email2ticket/store/c.py:1 -> email2ticket/store/c.py",
    ]


def test_check_finds_upward_imports_cli_imports_and_unplaced_modules(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "__init__.py": "from .exits import ExitCode\nfrom .mail import message\n",  # runs on every import
            "exits.py": "from .config import load\n",  # same layer: allowed
            "helpers.py": "",  # a root module in no layer
            "config/load.py": "",
            "cli/deliver.py": "from ..delivery import core\nfrom ..service import client\n",  # down, same layer
            "service/client.py": "def main():\n    from ..cli.deliver import main\n",  # the allowed exception
            "delivery/core.py": "from ..cli import deliver\nimport email2ticket.rules.chain\n",  # up, then down
            "rules/chain.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..store.x import y\n",
            "store/x.py": "from ..rules import chain\nfrom ..outbound import send\n",  # same layer 3
            "outbound/send.py": "from ..delivery.core import Outcome\n",
            "mail/message.py": "from ..exits import DataError\n",
        },
    )
    graph = import_graph(package)
    assert layer_violations(graph) == [
        "email2ticket/helpers.py: helpers is in no layer: add it to LAYERS in tests/test_structure.py",
        "email2ticket/__init__.py:2: imports email2ticket.mail.message (layer 4 mail) from layer 5 __init__",
        "email2ticket/delivery/core.py:1: imports email2ticket.cli.deliver (layer 1 cli) from layer 2 delivery",
        "email2ticket/outbound/send.py:1: imports email2ticket.delivery.core (layer 2 delivery) from layer 3 outbound",
    ]
    assert unresolved_imports(graph) == []
    # Were delivery an entrance too, its import of cli would still be refused: only service may.
    assert layer_violations(graph, {**LAYERS, "delivery": 1, "helpers": 5, "__init__": 4}) == [
        "email2ticket/delivery/core.py:1: imports email2ticket.cli.deliver: only service may import cli",
        "email2ticket/outbound/send.py:1: imports email2ticket.delivery.core (layer 1 delivery) from layer 3 outbound",
    ]


def test_check_finds_imports_of_no_file(tmp_path: Path) -> None:
    package = _tree(
        tmp_path,
        {
            "exits.py": "from .confg import load\nfrom ... import elsewhere\nimport email2ticket.nothing\n"
            "from .config.loader import x, y\nfrom .config import load, z\n",  # z: a name in config/__init__.py
            "config/__init__.py": "from email2ticket.config.load import x\nimport os.path\nfrom sqlalchemy import y\n",
            "config/load.py": "",
        },
    )
    assert unresolved_imports(import_graph(package)) == [
        "email2ticket/exits.py:1: from .confg import load: no such module in the package",
        "email2ticket/exits.py:2: from ... import elsewhere: no such module in the package",
        "email2ticket/exits.py:3: import email2ticket.nothing: no such module in the package",
        "email2ticket/exits.py:4: from .config.loader import x, y: no such module in the package",
    ]


def test_check_finds_long_modules_and_a_crowded_root(tmp_path: Path) -> None:
    long = "x = 1\n" * (MAX_LINES + 1)
    files = {f"root{n}.py": "" for n in range(MAX_ROOT_MODULES)}
    files |= {"__init__.py": "", "rules/chain.py": long, "rules/short.py": "x = 1\n" * MAX_LINES}
    files |= {"store/migrations/versions/0001_initial.py": long, "reply/separator_list.py": long}
    package = _tree(tmp_path, files)
    assert long_modules(package) == [f"email2ticket/rules/chain.py: {MAX_LINES + 1} lines (at most {MAX_LINES})"]
    assert len(root_modules(package)) == MAX_ROOT_MODULES
    (package / "__main__.py").write_text("")
    assert len(root_modules(package)) == MAX_ROOT_MODULES + 1


def test_check_finds_dataclasses(tmp_path: Path) -> None:
    record = "from msgspec import Struct\n\nclass Fine(Struct, frozen=True):\n    x: int\n"
    made = "from dataclasses import dataclass\n\n\n@dataclass(frozen=True)\nclass Costly:\n    x: int\n"
    package = _tree(tmp_path, {"__init__.py": "", "rules/fine.py": record, "rules/costly.py": made})
    assert dataclasses_defined(package) == ["email2ticket/rules/costly.py:5: Costly is a dataclass"]
