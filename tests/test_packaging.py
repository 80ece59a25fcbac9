"""pyproject.toml's licence metadata in the PEP 639 form (a table there is deprecated; setuptools stops building
it after 2027-02-18)."""

import pathlib
import re
import tomllib

ROOT = pathlib.Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_an_spdx_expression_with_existing_license_files():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"  # a string, not {text = ...}
    assert project["license-files"], "license-files lists the licence texts the wheel carries"
    for pattern in project["license-files"]:  # a pattern matching nothing is itself deprecated
        assert list(ROOT.glob(pattern)), f"license-files: {pattern!r} matches no file"
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))  # PEP 639: not both


def test_build_requires_a_setuptools_that_reads_pep_639():
    (req,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    low = re.search(r">=\s*(\d+)", req)
    assert low and int(low.group(1)) >= 77, req
