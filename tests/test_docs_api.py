"""The API reference lists every public name, each documented on one page.

``docs/api.rst`` is written by hand; these tests read it and compare it with
every public module's ``__all__`` found at test time, so a new public module
or name fails here until the page lists it. Nothing is built: the Sphinx build
itself runs in ``.ci/run``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections import defaultdict
from pathlib import Path

import pytest
from _public_api import public_module_names

API = Path(__file__).resolve().parents[1] / "docs" / "api.rst"
MODULE = re.compile(r"^\.\. (?:currentmodule|automodule):: (\S+)$")
ALIAS = re.compile(r"^- ``(\w+)``: :\w+:`([\w.]+)`$")


def public_modules() -> list[str]:
    return public_module_names()


def read_api(text: str):
    """What the page documents and what it links to, per module.

    Returns ``(documented, aliases, sections)``: names with a page or an entry
    of their own (autosummary entries, ``py:data`` constants), names listed as
    links to the page of another path, and the modules the page has a section
    for.
    """
    documented, aliases = defaultdict(list), defaultdict(dict)
    sections, module, in_summary = set(), None, False
    for line in text.splitlines():
        if line and not line.startswith(" "):
            in_summary = False  # an autosummary's entries end at the next block
        if match := MODULE.match(line):
            module = match[1]
            sections.add(module)
        elif line == ".. autosummary::":
            in_summary = True
        elif line.startswith(".. py:data:: "):
            documented[module].append(line.split()[-1])
        elif match := ALIAS.match(line):
            aliases[module][match[1]] = match[2]
        elif in_summary and line.startswith("   ") and line.strip()[0] != ":":
            documented[module].append(line.strip())
    return documented, aliases, sections


@pytest.fixture(scope="module")
def api():
    return read_api(API.read_text())


def test_every_public_module_has_a_section_on_the_api_page(api):
    _, _, sections = api
    assert sorted(set(public_modules()) - sections) == []
    assert sorted(sections - set(public_modules())) == []


@pytest.mark.parametrize("module_name", public_modules())
def test_api_page_lists_exactly_the_modules_all(api, module_name):
    documented, aliases, _ = api
    module = importlib.import_module(module_name)
    listed = documented[module_name] + list(aliases[module_name])
    assert len(listed) == len(set(listed)), f"{module_name}: a name listed twice"
    assert sorted(listed) == sorted(module.__all__)


def test_every_link_goes_to_the_same_object_documented_under_its_main_path(api):
    documented, aliases, _ = api
    for module_name, links in aliases.items():
        module = importlib.import_module(module_name)
        for name, target in links.items():
            target_module, target_name = target.rsplit(".", 1)
            assert target_name in documented[target_module], target
            real = getattr(importlib.import_module(target_module), target_name)
            assert getattr(module, name) is real, f"{module_name}.{name}"


def test_no_object_has_two_pages(api):
    documented, _, _ = api
    pages = defaultdict(list)
    for module_name, names in documented.items():
        module = importlib.import_module(module_name)
        for name in names:
            obj = getattr(module, name)
            if isinstance(obj, type) or callable(obj):  # constants may share values
                pages[id(obj)].append(f"{module_name}.{name}")
    assert [p for p in pages.values() if len(p) > 1] == []


def test_constants_show_their_current_values():
    """Constants are described by hand; their shown values must be the real ones."""
    shown = re.findall(
        r"^\.\. currentmodule:: (\S+)$|^\.\. py:data:: (\w+)\n   :value: (.*)$",
        API.read_text(),
        re.M,
    )
    module, checked = None, set()
    for current, name, value in shown:
        if current:
            module = current
            continue
        assert value == repr(getattr(importlib.import_module(module), name)), name
        checked.add(f"{module}.{name}")
    # Every public constant (a name in __all__ that is no class, function or
    # module) is shown where it is defined or re-exported, and nothing else is.
    constants = set()
    for name in public_modules():
        mod = importlib.import_module(name)
        for attr in mod.__all__:
            value = getattr(mod, attr)
            if not callable(value) and not inspect.ismodule(value):
                constants.add(attr)
    assert {c.rsplit(".", 1)[1] for c in checked} == constants


def test_a_name_missing_from_the_page_is_caught():
    text = API.read_text().replace("   taylor\n", "", 1)
    documented, _, _ = read_api(text)
    module = importlib.import_module("skprune.importance")
    assert "taylor" in module.__all__
    assert sorted(documented["skprune.importance"]) != sorted(module.__all__)
