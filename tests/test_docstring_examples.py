"""Every public name shows, in a doctest its docstring runs, what it does.

The public modules and their ``__all__`` are discovered here, not listed: a new
public module or name without an example fails this test. Classes and functions
carry their own numpydoc ``Examples`` section, last, with at least one example
whose output doctest checks; a constant cannot hold a docstring, so some public
docstring's example must show its value.
"""

import doctest
import functools
import importlib
import inspect
import re

import pytest
from _public_api import public_module_names

# A numpydoc section header: a title line underlined with dashes.
SECTION = re.compile(r"^(\S[^\n]*)\n(-+)$", re.MULTILINE)
# numpydoc's sections in the order it requires (numpydoc.validate.ALLOWED_SECTIONS).
NUMPYDOC_ORDER = [
    "Parameters",
    "Attributes",
    "Methods",
    "Returns",
    "Yields",
    "Other Parameters",
    "Raises",
    "Warns",
    "Warnings",
    "See Also",
    "Notes",
    "References",
    "Examples",
]
PARSER = doctest.DocTestParser()


def public_modules() -> list:
    names = public_module_names()
    return [importlib.import_module(name) for name in names]


def public_objects() -> dict:
    """Qualified public name -> object, for every name of every ``__all__``."""
    objects = {}
    for module in public_modules():
        for name in module.__all__:
            objects[f"{module.__name__}.{name}"] = getattr(module, name)
    return objects


def section_headers(doc: str) -> list[str]:
    return [m[1] for m in SECTION.finditer(doc) if len(m[2]) >= len(m[1])]


@functools.cache
def module_doctests(module_name: str) -> frozenset:
    """Names of the doctests with examples that doctest finds in a module."""
    tests = doctest.DocTestFinder().find(importlib.import_module(module_name))
    return frozenset(test.name for test in tests if test.examples)


def examples_section(doc: str) -> str | None:
    """The text of the numpydoc Examples section, None without one."""
    headers = [m for m in SECTION.finditer(doc) if len(m[2]) >= len(m[1])]
    for i, header in enumerate(headers):
        if header[1] == "Examples":
            end = headers[i + 1].start() if i + 1 < len(headers) else len(doc)
            return doc[header.end() : end]
    return None


def checked_examples(doc: str | None) -> list:
    """The doctest examples of the Examples section that have expected output."""
    section = examples_section(inspect.cleandoc(doc or ""))
    if section is None:
        return []
    return [ex for ex in PARSER.get_examples(section) if ex.want.strip()]


OBJECTS = public_objects()
DOCUMENTED = {
    name: obj
    for name, obj in OBJECTS.items()
    if inspect.isclass(obj) or inspect.isroutine(obj)
}
CONSTANTS = {name: obj for name, obj in OBJECTS.items() if name not in DOCUMENTED}


def test_every_public_module_declares_all():
    missing = [m.__name__ for m in public_modules() if not hasattr(m, "__all__")]
    assert missing == []


def test_the_discovery_finds_the_public_api():
    # A discovery that silently found nothing would pass every test below.
    assert "skprune.PrunedClassifier" in DOCUMENTED
    assert "skprune.callbacks.progress.format_round" in DOCUMENTED
    assert "skprune.schedules.SCHEDULES" in CONSTANTS
    assert len({id(obj) for obj in DOCUMENTED.values()}) > 40


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_public_object_has_an_example_with_checked_output(name):
    obj = DOCUMENTED[name]
    # Its own docstring: a class without one would show its base class's.
    doc = inspect.cleandoc(obj.__doc__ or "")
    assert doc, f"{name} has no docstring"
    headers = section_headers(doc)
    assert headers[-1:] == ["Examples"], f"{name}: no Examples section last, {headers}"
    assert checked_examples(doc), (
        f"{name}'s Examples section has no '>>>' line followed by expected output"
    )
    # Run by the suite's --doctest-modules over skprune/: found in its module.
    assert obj.__module__.split(".")[0] == "skprune"
    assert f"{obj.__module__}.{obj.__qualname__}" in module_doctests(obj.__module__)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_numpydoc_sections_are_known_and_in_order(name):
    headers = section_headers(inspect.cleandoc(DOCUMENTED[name].__doc__ or ""))
    assert set(headers) <= set(NUMPYDOC_ORDER), f"{name}: sections {headers}"
    assert len(set(headers)) == len(headers), f"{name}: a section twice, {headers}"
    assert headers == sorted(headers, key=NUMPYDOC_ORDER.index), (
        f"{name}: sections {headers}, numpydoc's order is {NUMPYDOC_ORDER}"
    )


@pytest.mark.parametrize("name", sorted(CONSTANTS))
def test_public_constant_is_shown_by_an_example(name):
    short = name.rsplit(".", 1)[1]
    word = re.compile(rf"\b{short}\b")
    shown = [
        owner
        for owner, obj in DOCUMENTED.items()
        for ex in checked_examples(obj.__doc__)
        if word.search(ex.source)
    ]
    assert shown, f"no public docstring's example shows {name}'s value"


def test_checked_examples_counts_only_output_in_the_examples_section():
    head = "Summary.\n\nExamples\n--------\n>>> x = 1\n"
    assert checked_examples(head) == []
    assert [ex.want for ex in checked_examples(head + ">>> x\n1\n")] == ["1\n"]
    # Output shown in another section is not the Examples section's.
    notes = "Summary.\n\nNotes\n-----\n>>> 1\n1\n\n"
    assert checked_examples(notes + head[len("Summary.\n\n") :]) == []
