"""Bad input (tests/bad): every malformed file gives one located error of the right class.

Each file under tests/bad/ starts with ``# expect: CLASS LINE:COL``; the test asserts both. On the
command line the same files print ``FILE:LINE:COL: error: …``, the source line and a caret, and
exit 1 without a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compiler import errors
from compiler.cli import main
from compiler.frontend.parse import parse_file, parse_text
from compiler.frontend.syntax import decode_source

BAD = sorted((Path(__file__).parent / "bad").glob("*.nx"))
ROOT = Path(__file__).resolve().parent.parent


def expectation(path: Path) -> tuple[type, int, int]:
    first = path.read_text().splitlines()[0] if path.read_text().strip() else ""
    if not first.startswith("# expect:"):
        return errors.ProgramError, 1, 1  # the empty file
    cls, pos = first.split()[2:4]
    line, col = pos.split(":")
    return getattr(errors, cls), int(line), int(col)


def test_suite_is_large_and_covers_every_error_class():
    classes = {expectation(p)[0] for p in BAD}
    assert len(BAD) >= 30
    wanted = {
        errors.SourceSyntaxError,
        errors.NumberError,
        errors.UndefinedError,
        errors.KindError,
        errors.ArityError,
        errors.DuplicateError,
        errors.IndexRangeError,
        errors.ProgramError,
    }
    assert wanted <= classes


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_file_raises_located_error(path):
    cls, line, col = expectation(path)
    with pytest.raises(errors.NexortError) as info:
        parse_file(path)
    err = info.value
    assert type(err) is cls, err.render()
    assert (err.loc.file, err.loc.line, err.loc.column) == (str(path), line, col), err.render()


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_cli_prints_file_line_col_and_caret(path, capsys):
    _, line, col = expectation(path)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:{line}:{col}: error: ")
    assert "Traceback" not in err
    if path.read_text().strip():
        assert "^" in err.splitlines()[-1]


@pytest.mark.parametrize(
    ("data", "line", "col"),
    [
        (b"arch a {\x00}", 1, 9),
        (b"arch a {\n  x = \xff\xfe\n}", 2, 7),
        (b"\x89PNG\r\n\x1a\n", 1, 1),
    ],
)
def test_binary_files_are_refused_with_position(data, line, col):
    with pytest.raises(errors.EncodingError) as info:
        decode_source(data, "f.nx")
    assert (info.value.loc.line, info.value.loc.column) == (line, col)


def test_binary_file_on_command_line(tmp_path, capsys):
    path = tmp_path / "image.nx"
    path.write_bytes(bytes(range(256)))
    assert main(["compile", str(path)]) == 1
    assert "not a text file" in capsys.readouterr().err


def test_missing_file_and_bad_const_are_usage_errors(capsys):
    assert main(["check", "no/such/file.nx"]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["check", str(ROOT / "samples" / "rnn.nx"), "--const", "Q=3"]) == 1
    assert "no const named Q" in capsys.readouterr().err


def test_empty_text_is_a_program_error():
    with pytest.raises(errors.ProgramError):
        parse_text("")


@pytest.mark.parametrize("name", ["nested_mean", "huge_power", "loop_too_large"])
def test_console_script_never_shows_a_traceback(name):
    bad = ROOT / "tests" / "bad" / f"{name}.nx"
    _, line, col = expectation(bad)
    proc = subprocess.run(
        [sys.executable, "-m", "compiler.cli", "check", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=120,  # refusals come from the source, not from running into a cap
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{bad}:{line}:{col}: error: ")
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def _npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X_train": np.zeros((0, 10))}, "X_train"),
        ({"X_train": np.zeros((0, 2, 5))}, "X_train"),
        ({"X_train": np.ones((2, 10)), "X_test": np.zeros((0, 10))}, "X_test"),
        ({"X_train": np.ones((2, 10)), "X_test": np.ones((3, 4))}, "X_test has 4 columns"),
    ],
)
def test_bad_data_is_a_usage_error(tmp_path, capsys, arrays, message):
    data = _npz(tmp_path / "d.npz", **arrays)
    mlp1 = str(ROOT / "samples" / "mlp1.nx")
    assert main(["exec", mlp1, "--width", "4", "--inputs", data]) == 1
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err


def test_empty_batch_through_the_api():
    from runtime.data import input_batch

    program = parse_file(ROOT / "samples" / "mlp1.nx")
    with pytest.raises(errors.UsageError, match="no rows"):
        input_batch(program, np.zeros((0, 10)))
    with pytest.raises(errors.UsageError, match="not numbers"):
        input_batch(program, [["a"] * 10])
