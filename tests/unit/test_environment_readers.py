"""pipeline/config.py is the one reader of the environment (issue 23 item 4): the resources get every value as a
field bound at wiring, the commands from the Deployment. An AST scan of the package finds every use of
``os.environ``, ``os.getenv`` and their kin, however ``os`` or the name was imported."""

import ast
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGE = ROOT / "pipeline"
_ENVIRONMENT = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
# Where the environment may be used, and for what: every use (None), or only the uses described.
ALLOWED: dict[str, set[str] | None] = {
    # The one reader of the pipeline's variables.
    "pipeline/config.py": None,
    # The simulator stands for the API; it is never part of a deployment's configuration.
    "pipeline/simulator/": None,
    # The demo's child environment: the user's own, less their pipeline settings, plus the demo's.
    "pipeline/cli/demo.py": {"environment_for_demo(os.environ)", "set_aside(os.environ)"},
    # Arrow's allocator, which Arrow reads from the environment, set when an entry point calls for it (never at
    # import: tests/unit/test_light_load.py).
    "pipeline/memory.py": {"os.environ.setdefault('ARROW_DEFAULT_MEMORY_POOL')"},
    # requests' own CA variables, read once per session as requests would (its trust_env is off for speed).
    "pipeline/api/http.py": {"os.environ.get('REQUESTS_CA_BUNDLE')", "os.environ.get('CURL_CA_BUNDLE')"},
}


def environment_uses(source: str) -> list[str]:
    """Each use of the environment in ``source``, described as ``os.environ.get('NAME')`` (a method called with a
    literal name), ``function(os.environ)`` (passed to a function), ``from os import environ`` or ``os.environ``."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    os_names = {alias.asname or "os" for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names if alias.name.split(".")[0] == "os"}
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            uses += [f"from os import {alias.name}" for alias in node.names if alias.name in _ENVIRONMENT]
        elif (isinstance(node, ast.Attribute) and node.attr in _ENVIRONMENT and isinstance(node.value, ast.Name)
              and node.value.id in os_names):
            uses.append(_described(node, parents))
    return uses


def _described(use: ast.Attribute, parents: dict[ast.AST, ast.AST]) -> str:
    name = f"os.{use.attr}"
    parent = parents.get(use)
    if isinstance(parent, ast.Attribute) and isinstance(call := parents.get(parent), ast.Call):
        first = call.args[0] if call.args else None
        argument = repr(first.value) if isinstance(first, ast.Constant) else "..."
        return f"{name}.{parent.attr}({argument})"
    if isinstance(parent, ast.Call) and use in parent.args and isinstance(parent.func, ast.Name):
        return f"{parent.func.id}({name})"
    return name


def _allowed(path: str) -> set[str] | None | bool:
    for place, uses in ALLOWED.items():
        if path == place or (place.endswith("/") and path.startswith(place)):
            return uses
    return False


@pytest.mark.parametrize("source, found", [
    ("import os\nos.environ['DDS_REGION']", ["os.environ"]),
    ("import os as system\nvalue = system.getenv('DDS_REGION')", ["os.getenv"]),
    ("from os import environ as env, path", ["from os import environ"]),
    ("import os.path\nsettings = dict(os.environ)", ["dict(os.environ)"]),
    ("import os\nos.environ.get('REQUESTS_CA_BUNDLE', None)", ["os.environ.get('REQUESTS_CA_BUNDLE')"]),
    ("import os\nos.environ.get(name)", ["os.environ.get(...)"]),
    ("import os\nos.path.isfile('x'); environ = {}; environ.get('DDS_REGION')", []),
])
def test_the_scan_finds_every_form_of_reading_the_environment(source, found):
    assert environment_uses(source) == found


def test_only_the_configuration_reads_the_environment():
    unexpected, seen = [], set()
    for file in sorted(PACKAGE.rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        allowed = _allowed(path)
        for use in environment_uses(file.read_text()):
            seen.add(path)
            if allowed is False or (allowed is not None and use not in allowed):
                unexpected.append(f"{path}: {use}")
    assert unexpected == [], "read the variable in pipeline/config.py (Deployment.from_env) and pass it on"
    # The scan sees the reads that are there: the configuration's own, and each narrower exception.
    assert {"pipeline/config.py", "pipeline/cli/demo.py", "pipeline/memory.py", "pipeline/api/http.py"} <= seen
