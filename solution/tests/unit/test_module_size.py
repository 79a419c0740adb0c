"""Every module of the package stays small enough to read in one sitting."""

from __future__ import annotations

from pathlib import Path

import movies

PACKAGE = Path(movies.__file__).parent
MAX_LINES = 400


def test_every_module_of_the_package_is_under_400_lines() -> None:
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert sizes, PACKAGE
    assert {name: lines for name, lines in sizes.items() if lines >= MAX_LINES} == {}
