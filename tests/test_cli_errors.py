"""Located errors of the gradient and execution commands (issues 2 and 3, "bad input"): a request
that names something in the architecture file points at it with FILE:LINE:COL and a caret."""

from __future__ import annotations

import re

from compiler.cli import main
from tests.conftest import ROOT

MLP2 = str(ROOT / "samples" / "mlp2.nx")
LOCATED = re.compile(r"^\S+mlp2\.nx:(\d+):(\d+): error: ")


def _line_of(text: str) -> int:
    return next(i for i, line in enumerate(open(MLP2).read().splitlines(), 1) if text in line)


def test_gradient_of_a_non_output_points_at_its_definition(capsys):
    assert main(["backprop", MLP2, "--output", "x1"]) == 1
    err = capsys.readouterr().err
    m = LOCATED.match(err)
    assert m and int(m.group(1)) == _line_of("x1 = relu(h1)"), err
    assert "not an output" in err and "^" in err and "Traceback" not in err


def test_inputs_of_the_wrong_dimension_point_at_the_declaration(capsys):
    assert main(["exec", MLP2, "--width", "8", "--inputs", "1,2,3"]) == 1
    err = capsys.readouterr().err
    m = LOCATED.match(err)
    assert m and int(m.group(1)) == _line_of("input xi[10]"), err
    assert "dimension 3" in err and "takes 10" in err


def test_a_file_that_is_not_npz_is_named_as_such(capsys, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip archive at all")
    assert main(["exec", MLP2, "--width", "8", "--inputs", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "is not an .npz file" in err and "pickle" not in err
