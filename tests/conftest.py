"""Shared fixtures: the bundled samples, and the ``--update-golden`` flag for golden files."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# mlp2 with a two-coordinate readout: the smallest architecture with k = 2 outputs (ce, two f's)
TWO_OUTPUT_MLP = """arch two {
    input xi[10]
    param U : vector[10]
    param W : matrix
    param v : vector[2]
    x = relu(W @ relu(U . xi))
    output v[0] * x, v[1] * x
}
"""
SAMPLES = sorted((ROOT / "samples").rglob("*.nx"))
GOLDEN = Path(__file__).resolve().parent / "golden"


def sample_id(path: Path) -> str:
    return path.relative_to(ROOT / "samples").with_suffix("").as_posix().replace("/", "__")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/* from the current output instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def check_golden(name: str, text: str, update: bool) -> None:
    """Compare ``text`` with tests/golden/NAME (or write it with --update-golden)."""
    path = GOLDEN / name
    if update or not path.exists():
        if not update:
            pytest.fail(f"missing golden file {path.name}; run pytest --update-golden")
        path.write_text(text)
        return
    expected = path.read_text()
    assert text == expected, f"{path.name} differs; review and run pytest --update-golden"
