"""Build hook: the wheel carries the compiled modules when it can.

hatchling runs :class:`CompiledModulesHook` for every wheel build (``pip
wheel .``, ``python -m build``, ``pip install .``). It compiles the modules
that ``pyproject.toml`` lists (``compiled-modules`` in this hook's table) with
mypyc, in a scratch copy of the sources (the source tree is only read), and
adds the extension modules and their build record to the wheel next to the
``.py`` files, which stay in it: the wheel is then tagged for this
interpreter and platform (``cp311-cp311-linux_x86_64``).

Without a C compiler or the Python headers the wheel is plain Python
(``py3-none-any``) and works the same, slower. ``NETSLEUTH_COMPILE`` decides:
``auto`` (the default) compiles when it can and otherwise builds a plain
wheel with a warning; ``1`` fails the build when it cannot compile; ``0``
never compiles. Editable installs are left to ``netsleuth.compiled``
(``scripts/setup``), which reads the same list.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODES = ("auto", "0", "1")


def _mode() -> str:
    mode = os.environ.get("NETSLEUTH_COMPILE", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"NETSLEUTH_COMPILE={mode!r}: use auto, 1 (required) or 0 (never)")
    return mode


class CompiledModulesHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def _wanted(self) -> bool:
        return self.target_name == "wheel" and _mode() != "0"

    def dependencies(self) -> list[str]:
        # mypyc (in mypy) and setuptools (which mypyc drives to build extensions)
        return ["mypy>=1.11", "setuptools>=61"] if self._wanted() else []

    def _compiled_module(self) -> ModuleType:
        """netsleuth.compiled from the tree being built (standard library only)."""
        path = Path(self.root) / "src" / "netsleuth" / "compiled.py"
        spec = importlib.util.spec_from_file_location("_netsleuth_compiled_build", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and friends look it up
        spec.loader.exec_module(module)
        return module

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._work: str | None = None
        if not self._wanted() or version == "editable":
            return
        compiled = self._compiled_module()
        modules = [str(p) for p in self.config.get("compiled-modules", [])]
        for path in modules:
            compiled.module_name(path)  # a wrong entry fails the build, with its name
        why = compiled.can_compile()
        if not why:
            self._work = tempfile.mkdtemp(prefix="netsleuth-wheel-")
            try:
                built = compiled.compile_modules(
                    Path(self.root) / "src",
                    modules,
                    Path(self._work),
                    Path(self.root) / "pyproject.toml",
                )
            except RuntimeError as exc:
                why = str(exc)
        if why:
            if _mode() == "1":
                raise RuntimeError(f"netsleuth: cannot compile {' '.join(modules)}: {why}")
            self.app.display_warning(
                f"netsleuth: building a plain-Python wheel (NETSLEUTH_COMPILE=0 to say so): {why}"
            )
            return
        # at the same places as under src/; the sources of the compiled modules
        # from the same scratch copy, so the wheel matches its record even if
        # the tree is edited during the build
        sources = [Path(self._work) / p for p in modules]
        for path in [*built, *sources]:
            build_data["force_include"][str(path)] = path.relative_to(self._work).as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        self.app.display_info(f"netsleuth: compiled {' '.join(modules)} with mypyc")

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if getattr(self, "_work", None):
            shutil.rmtree(str(self._work), ignore_errors=True)
