r"""The README's promises: it fits on a few screens, its first screen gives the two
set-up commands (install + main job, install + tests), its test command is the one CI
runs, and every relative link in it points to a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"

MAX_LINES = 250
FIRST_SCREEN = 40
# The main job on a fresh machine: a virtual environment, torch pinned first (so pip takes
# the local CPU wheel, never a CUDA build), dreamgeo, then the example.
MAIN_JOB = (
    "python -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 -e . "
    "&& python examples/train_amazon.py"
)
CI_MARKER = "# --- the README's test command, verbatim ---"


def _readme_lines() -> list[str]:
    return README.read_text(encoding="utf-8").splitlines()


def _ci_test_command() -> str:
    lines = CI_SCRIPT.read_text(encoding="utf-8").splitlines()
    index = lines.index(CI_MARKER)  # ValueError here: the marker line is gone from .ci/run
    return lines[index + 1].strip()


def test_readme_fits_in_250_lines():
    assert len(_readme_lines()) <= MAX_LINES


def test_first_screen_has_the_two_setup_commands():
    first_screen = [line.strip() for line in _readme_lines()[:FIRST_SCREEN]]
    assert MAIN_JOB in first_screen
    assert _ci_test_command() in first_screen
    # torch's pin comes before the local package in both, so pip resolves the CPU wheel
    for command in (MAIN_JOB, _ci_test_command()):
        assert command.index("torch==2.13.0") < command.index("-e ")


def test_readme_test_command_is_the_one_ci_runs():
    command = _ci_test_command()
    assert "pytest" in command
    # the only line of the README that runs pytest is the CI command, verbatim
    pytest_lines = [
        line.strip()
        for line in _readme_lines()
        if re.search(r"(^|&&\s*)python -m pytest\b", line.strip())
    ]
    assert pytest_lines == [command]


def _relative_link_targets(text: str) -> list[str]:
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.DOTALL | re.MULTILINE)  # code blocks
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    targets = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text, flags=re.MULTILINE)
    targets += re.findall(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", text)
    return [
        target
        for target in targets
        if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) and not target.startswith("#")
    ]


def test_relative_links_point_to_existing_files():
    targets = _relative_link_targets(README.read_text(encoding="utf-8"))
    assert targets, "no relative links found: the link pattern is broken"
    missing = [target for target in targets if not (ROOT / target.split("#", 1)[0]).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_link_finder_sees_links_and_skips_code():
    text = (
        "[a](docs/a.md) ![b](docs/b.png) [c](https://x.org) [d](#anchor) `[e](nope.md)`\n"
        "[f]: docs/f.md\n```python\nx = y[i](z)\n```\n[g](docs/g.md#part)\n"
    )
    assert _relative_link_targets(text) == [
        "docs/a.md",
        "docs/b.png",
        "docs/g.md#part",
        "docs/f.md",
    ]
