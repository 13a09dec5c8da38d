"""The compiled build of the packet reader and journey matcher (and of any
module ``pyproject.toml`` lists in ``compiled-modules``): the older entry
point of :mod:`netsleuth.compiled`, which holds the build, its record and
the guard that a stale build never runs. ``scripts/setup`` and
``scripts/check`` call :func:`main` with ``--if-stale``."""

from __future__ import annotations

from netsleuth.compiled import (
    RECORD_FILE,
    build,
    can_compile,
    compile_modules,
    compiled_modules,
    configured_modules,
    drop_stale,
    install_guard,
    is_fresh,
    main,
    recorded_modules,
    stale_modules,
)

__all__ = [
    "RECORD_FILE",
    "build",
    "can_compile",
    "compile_modules",
    "compiled_modules",
    "configured_modules",
    "drop_stale",
    "install_guard",
    "is_fresh",
    "main",
    "recorded_modules",
    "stale_modules",
]
