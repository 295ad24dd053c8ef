"""The public modules of skprune, found at test time (one discovery for every test)."""

import pkgutil

import skprune


def public_module_names() -> list[str]:
    """skprune and every module under it with no private part in its path.

    ``skprune/conftest.py`` is pytest's settings for the doctests, not an API
    module.
    """
    names = ["skprune"]
    for info in pkgutil.walk_packages(skprune.__path__, "skprune."):
        parts = info.name.split(".")[1:]
        if not any(p.startswith("_") for p in parts) and parts[-1] != "conftest":
            names.append(info.name)
    return names
