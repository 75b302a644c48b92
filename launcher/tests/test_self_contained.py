"""The launcher is one file the agent runs in the training image: Python 3.8 grammar (Clara
Train 4.x images), and imports from the standard library and `clearml` only."""

import ast
import sys

from conftest import LAUNCHER


def test_the_launcher_parses_as_python_3_8():
    ast.parse(LAUNCHER.read_text(), filename=str(LAUNCHER), feature_version=(3, 8))


def test_the_launcher_imports_only_the_standard_library_and_clearml():
    tree = ast.parse(LAUNCHER.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert modules - set(sys.stdlib_module_names) == {"clearml"}
