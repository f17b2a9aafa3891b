"""Selection patterns, default selection, [tool.frontrun] discovery and the TOML fallback reader."""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

import pytest

from frontrun.rewrite import _config, _toml
from frontrun.rewrite._config import make_selection, parse_pattern

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize(
    "pattern, name, expected",
    [
        ("myapp", "myapp", True),
        ("myapp", "myapp.models", True),  # a bare name takes the whole package
        ("myapp", "myapp2", False),
        ("myapp.*", "myapp", True),  # the package too: its __init__ is most often its API
        ("myapp.*", "myapp.models.user", True),
        ("tests.test_*", "tests.test_api", True),
        ("tests.test_*", "tests.helpers", False),
        ("*_test", "pkg.thing_test", True),
    ],
)
def test_module_name_patterns(pattern, name, expected):
    assert parse_pattern(pattern, "/root").matches(name, None) is expected


def test_path_patterns(tmp_path):
    src = tmp_path / "src" / "app"
    src.mkdir(parents=True)
    module = src / "core.py"
    module.write_text("")
    other = tmp_path / "tools" / "gen.py"
    other.parent.mkdir()
    other.write_text("")
    root = str(tmp_path)
    assert parse_pattern("src/", root).matches("app.core", str(module))
    assert parse_pattern("./src", root).matches("app.core", str(module))
    assert not parse_pattern("./src", root).matches("gen", str(other))
    assert parse_pattern("src/*/core.py", root).matches("x", str(module))
    assert parse_pattern("tools/*.py", root).matches("x", str(other))
    assert parse_pattern("src/a*", root).matches("x", str(module))  # a glob matching a directory
    assert parse_pattern(str(other), root).matches("x", str(other))
    assert not parse_pattern("src/", root).matches("app.core", None)


def test_pattern_policies():
    assert parse_pattern("vendor.db=resources", "/").policy == "resources"
    assert parse_pattern(("vendor.db", "all"), "/").policy == "all"
    assert parse_pattern({"pattern": "vendor.db", "policy": "shared"}, "/").policy == "shared"
    assert parse_pattern("src/a=b", "/").text == "src/a=b"  # a path may have an '='
    with pytest.raises(ValueError, match="unknown frontrun policy 'Shared'"):
        parse_pattern("myapp.*=Shared", "/")  # a module name has none: a misspelt policy
    with pytest.raises(ValueError):
        parse_pattern(("vendor.db", "everything"), "/")
    with pytest.raises(ValueError):
        parse_pattern({"module": "x"}, "/")
    with pytest.raises(ValueError):
        parse_pattern("", "/")
    with pytest.raises(TypeError):
        parse_pattern(3, "/")


def test_rules_order(tmp_path):
    selection = make_selection(
        include=[("myapp.db", "resources"), "myapp"], exclude=["myapp.gen.*"], policy="all",
        root=str(tmp_path), use_config=False,
    )
    assert selection.policy_for("myapp.db", None) == "resources"
    assert selection.policy_for("myapp.api", None) == "all"
    assert selection.policy_for("myapp.gen.x", None) is None
    assert selection.policy_for("myapp.gen", None) is None  # `myapp.gen.*` is the package too
    assert selection.policy_for("other", str(tmp_path / "other.py")) is None  # include given: only those
    assert selection.policy_for("frontrun.rewrite", None) is None
    with pytest.raises(ValueError):
        make_selection(policy="fast", root=str(tmp_path), use_config=False)


def test_module_name_patterns_match_the_dotted_path_under_the_project_root(tmp_path):
    # pytest imports tests/unit/test_io.py (no __init__.py) as "test_io"; a script's sibling is
    # imported by its basename too.
    for rel in ("tests/unit/test_io.py", "app/helpers.py", "pkg/__init__.py", "my-tools/x.py", "data/x.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    selection = make_selection(include=["tests", "app.*", "pkg", "my-tools"], exclude=["tests.unit.skip_*"],
                               root=str(tmp_path), use_config=False)
    assert selection.policy_for("test_io", str(tmp_path / "tests/unit/test_io.py")) == "shared"
    assert selection.policy_for("helpers", str(tmp_path / "app/helpers.py")) == "shared"
    assert selection.policy_for("pkg", str(tmp_path / "pkg/__init__.py")) == "shared"
    # Only dotted paths that are module names: "my-tools" is not one (a path pattern selects it).
    assert selection.policy_for("x", str(tmp_path / "my-tools/x.py")) is None
    assert selection.policy_for("x", str(tmp_path / "data/x.txt")) is None
    (tmp_path / "tests/unit/skip_me.py").write_text("")
    assert selection.policy_for("skip_me", str(tmp_path / "tests/unit/skip_me.py")) is None  # excluded so
    outside = tmp_path.parent / f"{tmp_path.name}_outside" / "tests" / "test_io.py"
    outside.parent.mkdir(parents=True)
    outside.write_text("")
    assert selection.policy_for("test_io", str(outside)) is None  # not under the root
    assert _config.dotted_names(str(tmp_path / "tests/unit/test_io.py"), (str(tmp_path),)) == ["tests.unit.test_io"]


def test_default_selection_is_the_project_code(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    selection = make_selection(root=str(project), use_config=False)
    assert selection.policy_for("app", str(project / "app.py")) == "shared"
    assert selection.policy_for("app.x", str(project / "app" / "x.py")) == "shared"
    assert selection.policy_for("outside", str(tmp_path / "outside.py")) is None
    venv_module = project / ".venv" / "lib" / "python3" / "site-packages" / "dep.py"
    assert selection.policy_for("dep", str(venv_module)) is None
    assert selection.policy_for("json", json.__file__) is None
    assert selection.policy_for("namespace", None) is None


def test_default_selection_excludes_the_prefix(tmp_path, monkeypatch):
    prefix = tmp_path / "prefix"
    project = tmp_path / "proj"
    project.mkdir()
    monkeypatch.setattr(sys, "prefix", str(prefix))
    selection = make_selection(root=str(tmp_path), use_config=False, extra_roots=[str(project)])
    assert selection.policy_for("tool", str(prefix / "bin" / "tool.py")) is None
    assert selection.policy_for("app", str(project / "app.py")) == "shared"


def test_project_inside_the_prefix_keeps_its_code(tmp_path, monkeypatch):
    # e.g. a container with the system prefix /usr and the project in /usr/src/app
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    project = tmp_path / "src" / "app"
    project.mkdir(parents=True)
    selection = make_selection(root=str(project), use_config=False)
    assert selection.policy_for("main", str(project / "main.py")) == "shared"
    stdlib = sysconfig.get_paths()["stdlib"]
    assert selection.policy_for("os", os.path.join(stdlib, "os.py")) is None


PYPROJECT = """\
[project]
name = "demo"

[tool.frontrun]
include = ["myapp", ["vendor.db", "resources"], {pattern = "tools/", policy = "all"}]
exclude = ["myapp.generated.*"]
policy = "all"
resource_methods = ["mylib.Pool.get"]
cache_dir = ".frontrun-cache"
engine_setting = 3  # an unknown key is warned about, not an error
"""


def test_pyproject_discovered_upwards_and_merged_with_arguments(tmp_path):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)
    with pytest.warns(UserWarning, match=r"unknown \[tool.frontrun\] key 'engine_setting' ignored") as caught:
        selection = make_selection(root=str(start))
    if sys.version_info >= (3, 12):  # said of the caller's line, not frontrun's
        assert [w.filename for w in caught] == [__file__]
    assert selection.root == str(tmp_path)
    assert selection.pyproject == str(tmp_path / "pyproject.toml")
    assert [p.text for p in selection.include] == ["myapp", "vendor.db", "tools/"]
    assert selection.policy_for("vendor.db", None) == "resources"
    assert selection.policy_for("myapp.x", None) == "all"
    assert selection.policy_for("t", str(tmp_path / "tools" / "t.py")) == "all"  # relative to the project
    assert selection.policy_for("myapp.generated.x", None) is None
    assert selection.resource_methods == ("mylib.Pool.get",)
    assert selection.cache_dir == str(tmp_path / ".frontrun-cache")

    with pytest.warns(UserWarning, match="engine_setting"):
        overridden = make_selection(include=["other"], exclude=["other.skip"], policy="resources",
                                    resource_methods=["x.y"], root=str(start))
    assert [p.text for p in overridden.include] == ["other"]  # include: replaced
    assert [p.text for p in overridden.exclude] == ["myapp.generated.*", "other.skip"]  # exclude: added
    assert overridden.policy == "resources"
    assert overridden.resource_methods == ("mylib.Pool.get", "x.y")

    ignored = make_selection(root=str(start), use_config=False)
    assert ignored.include == () and ignored.root == str(start)


def test_pyproject_without_frontrun_table_still_marks_the_root(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "sub").mkdir()
    root, table, pyproject = _config.discover(str(tmp_path / "sub"))
    assert (root, table, pyproject) == (str(tmp_path), None, str(tmp_path / "pyproject.toml"))


def test_a_member_projects_pyproject_without_a_table_leaves_the_lookup_to_the_one_above(tmp_path):
    # mono/pyproject.toml has [tool.frontrun]; mono/svc/pyproject.toml (pytest's ini) has not.
    (tmp_path / "pyproject.toml").write_text('[tool.frontrun]\ninclude = ["svc.*"]\n')
    svc = tmp_path / "svc"
    (svc / "tests").mkdir(parents=True)
    (svc / "pyproject.toml").write_text('[project]\nname = "svc"\ndependencies = ["frontrun"]\n\n'
                                        '[tool.pytest.ini_options]\nminversion = "7"\n')
    root, table, pyproject = _config.discover(str(svc / "tests"))
    assert (root, table, pyproject) == (str(tmp_path), {"include": ["svc.*"]}, str(tmp_path / "pyproject.toml"))
    # A junk pyproject that is not frontrun's is passed over, not parsed.
    (svc / "pyproject.toml").write_text("[[[ not toml\n")
    assert _config.discover(str(svc))[1] == {"include": ["svc.*"]}


def test_bad_configuration_is_reported(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.frontrun]\npolicy = "fastest"\n')
    with pytest.raises(ValueError, match="fastest"):
        make_selection(root=str(tmp_path))
    (tmp_path / "pyproject.toml").write_text('[tool.frontrun]\ninclude = "x\n')
    with pytest.raises(ValueError, match="cannot parse"):
        make_selection(root=str(tmp_path))
    (tmp_path / "pyproject.toml").write_text('[tool.frontrun]\npolcy = "all"\nincludes = ["x"]\n')
    with pytest.warns(UserWarning, match=r"unknown \[tool.frontrun\] keys 'includes', 'polcy' ignored \(known: cache_dir, "):
        make_selection(root=str(tmp_path))


TOML_SAMPLE = (HERE / "data" / "toml_sample.toml").read_text(encoding="utf-8")

EXPECTED = {
    "top": "value",
    "project": {"name": "x", "deps": ["a>=1", "b"]},
    "tool": {
        "other": {
            "s": "multi [tool.frontrun]\nline",
            "raw": "raw \\ text",
            "q": 'a ""quoted"" b""',
            "cont": "one two",
            "escapes": 'tab\there \u00e9 "q" \\',
            "num": 1000,
            "neg": -5,
            "hex": 255,
            "f": 350.0,
            "yes": True,
            "no": False,
            "dotted": {"key": {"here": 1}},
            "quoted.key": 2,
        },
        "arr": [{"a": 1}, {"a": 2, "sub": {"k": "v"}}],
        "frontrun": {
            "include": ["myapp", "myapp.*", ["vendor.db", "resources"], {"pattern": "x", "policy": "all"}],
            "nested": [[1, 2], ["a"]],
            "empty": [],
            "table": {},
        },
    },
}


def test_fallback_toml_reader():
    assert _toml.loads(TOML_SAMPLE) == EXPECTED


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is 3.11+")
def test_fallback_toml_reader_agrees_with_tomllib():
    import tomllib

    assert _toml.loads(TOML_SAMPLE) == tomllib.loads(TOML_SAMPLE)
    text = (HERE.parent.parent / "pyproject.toml").read_text()
    assert _toml.loads(text) == tomllib.loads(text)


def test_fallback_toml_reader_keeps_dates_as_text():
    assert _toml.loads("d = 1979-05-27T07:32:00Z\nt = 1979-05-27 07:32:00\n") == {
        "d": "1979-05-27T07:32:00Z", "t": "1979-05-27 07:32:00"}


@pytest.mark.parametrize("bad", ['x = "unterminated\n', "x = [1, 2\n", "x = \n", "[tbl\n", 'x = "\\q"\n'])
def test_fallback_toml_reader_rejects_broken_input(bad):
    with pytest.raises(_toml.TOMLDecodeError):
        _toml.loads(bad)


def test_config_uses_the_fallback_without_tomllib_or_tomli(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tomllib", None)  # makes `import tomllib` fail
    monkeypatch.setitem(sys.modules, "tomli", None)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    assert _config.read_frontrun_table(str(tmp_path / "pyproject.toml"))["policy"] == "all"


def test_a_pattern_of_a_packages_submodules_selects_the_package_too(tmp_path):
    # `--include 'cachetools.*'` left cachetools/__init__.py unrewritten, where LRUCache lives:
    # its race passed unseen, and the README's own example (`--include 'myapp.*'`) did the same.
    selection = make_selection(include=["cachetools.*"], root=str(tmp_path), use_config=False)
    assert selection.policy_for("cachetools", None) == "shared"
    assert selection.policy_for("cachetools.keys", None) == "shared"
    assert selection.policy_for("cachetoolsx", None) is None
    assert selection.policy_for("other.cachetools", None) is None
