"""Package attributes imported on first use."""

from __future__ import annotations

import sys

import pytest

from soc_agent.lazy import lazy_attributes


def test_a_name_imports_its_module_on_first_use_only(tmp_path, monkeypatch):
    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from soc_agent.lazy import lazy_attributes\n"
        "__getattr__ = lazy_attributes(__name__, {'VALUE': 'heavy'})\n")
    (package / "heavy.py").write_text("import sys\nsys.modules[__package__].loads = getattr("
                                      "sys.modules[__package__], 'loads', 0) + 1\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import lazypkg

    try:
        assert "lazypkg.heavy" not in sys.modules
        assert lazypkg.VALUE == 42
        assert lazypkg.VALUE == 42 and lazypkg.loads == 1
        assert "VALUE" in vars(lazypkg)  # kept on the package: the next lookup is a plain attribute
        with pytest.raises(AttributeError, match="'lazypkg' has no attribute 'OTHER'"):
            lazypkg.OTHER  # noqa: B018
    finally:
        for name in ("lazypkg", "lazypkg.heavy"):
            sys.modules.pop(name, None)


def test_the_getattr_refuses_names_it_does_not_own():
    with pytest.raises(AttributeError):
        lazy_attributes("soc_agent", {})("anything")
