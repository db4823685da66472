"""The plugin guide and the tests keep up with the plugin API in ``fewgen/hookspecs.py``.

A hook that is added or changed must be documented, with its argument names, in the
"Hook reference" section of docs/writing_plugins.md, and must be exercised by a test.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from fewgen import hookspecs

REPOSITORY = Path(__file__).resolve().parent.parent
GUIDE = REPOSITORY / "docs" / "writing_plugins.md"
TEST_FOLDERS = ("tests", "plugins", "examples")
# A documented hook signature is a code line holding only the call: ``name(arg, arg)``.
SIGNATURE_LINE = re.compile(r"^(?P<name>[a-z_][a-z0-9_]*)\((?P<args>[^()]*)\)$")


def hook_arguments() -> dict[str, list[str]]:
    """Each hook's argument names, as pluggy sees them."""
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return {
        name: list(inspect.signature(function).parameters)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


def documented_signatures() -> dict[str, list[list[str]]]:
    """Signature lines inside code blocks of the guide's "Hook reference" section, by hook name."""
    text = GUIDE.read_text(encoding="utf-8")
    section = re.search(r"^## Hook reference\n(?P<body>.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert section, f"{GUIDE} has no '## Hook reference' section"
    found: dict[str, list[list[str]]] = {}
    in_code = False
    for line in section["body"].splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = SIGNATURE_LINE.match(line.strip()) if in_code else None
        if match:
            arguments = [part.split(":")[0].split("=")[0].strip() for part in match["args"].split(",")]
            found.setdefault(match["name"], []).append([a for a in arguments if a])
    return found


def test_hookspecs_are_found() -> None:
    # Guards the tests below against passing vacuously if the marker lookup ever breaks.
    assert {"register_generators", "before_step"} <= set(hook_arguments())


@pytest.mark.parametrize("hook", sorted(hook_arguments()))
def test_hook_is_documented_with_its_arguments(hook: str) -> None:
    documented = documented_signatures().get(hook)
    expected = hook_arguments()[hook]
    assert documented, (
        f"hook {hook!r} is missing from the Hook reference of {GUIDE}; add `{hook}({', '.join(expected)})`"
    )
    for arguments in documented:
        assert arguments == expected, (
            f"{GUIDE} documents {hook}({', '.join(arguments)}) but fewgen/hookspecs.py defines"
            f" {hook}({', '.join(expected)})"
        )


def test_guide_documents_no_hook_that_does_not_exist() -> None:
    unknown = sorted(set(documented_signatures()) - set(hook_arguments()))
    assert not unknown, f"the Hook reference of {GUIDE} documents hooks fewgen does not define: {unknown}"


def files_with_tests() -> list[Path]:
    files: list[Path] = []
    for folder in TEST_FOLDERS:
        for path in sorted((REPOSITORY / folder).rglob("*.py")):
            is_test = path.name.startswith("test_") or path.name.endswith("_test.py")
            if is_test and path.resolve() != Path(__file__).resolve() and ".venv" not in path.parts:
                files.append(path)
    return files


@pytest.mark.parametrize("hook", sorted(hook_arguments()))
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    pattern = re.compile(rf"\b{re.escape(hook)}\b")
    mentions = [path for path in files_with_tests() if pattern.search(path.read_text(encoding="utf-8"))]
    assert mentions, f"no test under {', '.join(TEST_FOLDERS)}/ mentions the hook {hook!r}"
