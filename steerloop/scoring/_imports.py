"""Import a scorer class or factory by its dotted path (a policy's ``use:``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from steerloop.errors import ScorerError


def import_object(path: str, where: str) -> Callable[..., Any]:
    """The object at ``path`` (``package.module.Name``); ``where`` prefixes error messages.

    Raises
    ------
    ScorerError
        Reason ``"import"`` when it cannot be imported or is not callable.
    """
    parts = path.split(".")
    error: Exception | None = None
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            target: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and not (
                module_name == exc.name or module_name.startswith(exc.name + ".")
            ):
                # The module exists but one of *its* imports is missing (an extra).
                raise ScorerError(
                    path,
                    "import",
                    f"{where}: importing {module_name!r} failed: {exc}; install the extra it "
                    "needs (for the code scorers: pip install 'steerloop[code]')",
                ) from exc
            error = exc
            continue
        except Exception as exc:
            raise ScorerError(
                path, "import", f"{where}: importing {module_name!r} raised {exc!r}"
            ) from exc
        try:
            for attribute in parts[cut:]:
                target = getattr(target, attribute)
        except AttributeError as exc:
            raise ScorerError(
                path,
                "import",
                f"{where}: module {module_name!r} has no attribute "
                f"{'.'.join(parts[cut:])!r}; check the spelling of `use`",
            ) from exc
        if not callable(target):
            raise ScorerError(
                path, "import", f"{where}: {path!r} is not a class or factory function"
            )
        return cast(Callable[..., Any], target)
    raise ScorerError(
        path,
        "import",
        f"{where}: cannot import {path!r} ({error}); `use` must be a full import path such as "
        "steerloop.scoring.code.SecurityScorer",
    )
