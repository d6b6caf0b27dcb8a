"""The documentation says what the code does: defaults, parameters, fields, options.

Each documented list is compared with the code it describes (signatures,
dataclass fields, argparse parsers), so neither can change without the other.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from dask_gradcode import CodedSGDClassifier, CodedSGDRegressor
from dask_gradcode.bench import BENCHMARKS, load_benchmark
from dask_gradcode.cli import build_parser
from dask_gradcode.estimators.base import _fit_profile
from dask_gradcode.scheduler import CodedGradient, RoundRecord
from dask_gradcode.scheduler.transports import default_transport

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def section(page: Path, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    text = page.read_text()
    start = text.index(f"{heading}\n")
    rest = text[start + len(heading) + 1 :]
    end = re.search(r"^#{1,6} ", rest, re.MULTILINE)
    return rest if end is None else rest[: end.start()]


def table_keys(text: str) -> list[str]:
    """The backticked names in the first column of a markdown table's rows."""
    keys = []
    for line in text.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2 and "`" in cells[1]:
            keys += re.findall(r"`([A-Za-z_][A-Za-z_0-9]*)`", cells[1])
    return keys


def signature_text(callable_, name: str) -> str:
    """``name(a, b, *, c=1, ...)`` as the docs write it (no annotations)."""
    parts, starred = [], False
    for parameter in list(inspect.signature(callable_).parameters.values())[1:]:
        if parameter.kind is parameter.KEYWORD_ONLY and not starred:
            parts.append("*")
            starred = True
        if parameter.default is parameter.empty:
            parts.append(parameter.name)
        else:
            default = parameter.default
            shown = f'"{default}"' if isinstance(default, str) else repr(default)
            parts.append(f"{parameter.name}={shown}")
    return f"{name}({', '.join(parts)})"


def docstring_defaults(cls: type) -> dict[str, str]:
    """``name -> default`` from the numpydoc ``Parameters`` section."""
    doc = inspect.getdoc(cls) or ""
    params = doc.split("Parameters\n----------\n", 1)[1].split("\nAttributes\n")[0]
    found = {}
    for match in re.finditer(r"^(\w+) : .*?default=(.+)$", params, re.MULTILINE):
        found[match.group(1)] = match.group(2).strip()
    return found


@pytest.mark.parametrize("estimator", [CodedSGDClassifier, CodedSGDRegressor])
def test_the_parameter_table_lists_every_parameter_and_only_those(estimator):
    table = set(
        table_keys(
            section(
                DOCS / "estimators.md",
                "## Every parameter of SGDClassifier and SGDRegressor",
            )
        )
    )
    both = set(CodedSGDClassifier().get_params()) | set(
        CodedSGDRegressor().get_params()
    )
    assert table == both
    assert set(estimator().get_params()) <= table


@pytest.mark.parametrize(
    "estimator", [CodedSGDClassifier, CodedSGDRegressor, CodedGradient]
)
def test_every_documented_default_is_the_signatures(estimator):
    signature = inspect.signature(estimator.__init__).parameters
    documented = docstring_defaults(estimator)
    assert documented, "no 'default=' found: the docstring's format changed"
    for name, text in documented.items():
        assert name in signature, (
            f"{estimator.__name__} documents {name}, which it has not"
        )
        assert ast.literal_eval(text) == signature[name].default, (
            f"{estimator.__name__}.{name}: documented default={text}, "
            f"signature {signature[name].default!r}"
        )


def test_the_scheduler_page_gives_coded_gradients_signature():
    interface = " ".join(section(DOCS / "scheduler.md", "## Interface").split())
    assert f"`{signature_text(CodedGradient.__init__, 'CodedGradient')}`" in interface


def test_each_page_names_the_codes_default_transport_as_the_default():
    default = default_transport()  # with no gradcode.transport configured
    said = {
        DOCS / "scheduler.md": f'`gradcode.transport`, else `"{default}"`',
        DOCS / "estimators.md": f'`"{default}"` (the default',
        ROOT / "README.md": f'`transport="{default}"`, the default',
    }
    for page, words in said.items():
        assert words in " ".join(page.read_text().split()), page.name


def test_the_round_record_table_defines_every_field():
    table = table_keys(section(DOCS / "scheduler.md", "### Round records"))
    assert table == [field.name for field in dataclasses.fields(RoundRecord)]


def test_the_fit_profile_table_defines_every_key():
    text = (DOCS / "estimators.md").read_text()
    start = text.index("`fit_profile_`: where")
    keys = table_keys(text[start : start + 2000].split("\n\n", 2)[1])
    assert keys == list(_fit_profile([], 0, 0, 0, 0, 0, 0))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        flag
        for action in parser._actions
        if action.help is not argparse.SUPPRESS
        for flag in action.option_strings
    }


def _bench_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    parser.parse_args(["bench", "stability"])  # fills the lazy bench parser
    commands = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    bench = commands.choices["bench"]
    names = next(a for a in bench._actions if isinstance(a, argparse._SubParsersAction))
    return dict(names.choices)


def test_the_readme_lists_every_benchmark_and_which_take_no_cluster():
    readme = " ".join((ROOT / "README.md").read_text().split())
    listed = re.search(r"`dask-gradcode bench ([a-z| -]+)`", readme)
    assert listed is not None
    assert [n.strip() for n in listed.group(1).split("|")] == list(BENCHMARKS)
    local = {name for name in BENCHMARKS if load_benchmark(name).local_only}
    for page in (ROOT / "README.md", DOCS / "cluster.md"):
        text = " ".join(page.read_text().split())
        sentence = text.split("take no cluster options", 1)[1].split(". ", 1)[0]
        assert set(re.findall(r"`([a-z][a-z-]*)`", sentence)) == local, page.name


@pytest.mark.parametrize("page", ["cluster.md", "reproducing.md"])
def test_every_option_a_page_gives_a_benchmark_is_one_it_lists(page):
    parsers = _bench_parsers()
    text = (DOCS / page).read_text()
    for match in re.finditer(
        r"dask-gradcode bench ([a-z-]+)((?: --?[a-z-]+(?: [^ `\n-][^ `\n]*)*)*)", text
    ):
        name, rest = match.group(1), match.group(2)
        for flag in re.findall(r"(--[a-z-]+)", rest):
            assert flag in _options(parsers[name]), f"{page}: bench {name} {flag}"
