"""The one output convention of every command: ``--json`` prints the document
on stdout, ``--json PATH`` writes the same document to PATH and the text report to stdout; the
progress reporter redraws a few times a second; ``python -m compiler.cli`` is ``nexort``."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest

import tests.fake_limit  # noqa: F401  (the training-limit test engines for limit/converge)
from compiler.cli import main
from compiler.cli.app import build_parser
from compiler.cli.common import COMMANDS
from compiler.cli.progress import Progress
from tests.conftest import ROOT

MLP2 = str(ROOT / "samples" / "mlp2.nx")
X1 = ",".join(["1"] + ["0"] * 9)

# one quick invocation per command; the registry decides which commands must be here
INVOCATIONS = {
    "compile": [MLP2],
    "check": [MLP2],
    "exec": [MLP2, "--width", "16", "--inputs", X1],
    "backprop": [MLP2],
    "total": [MLP2, "--batch", "2"],
    "abcd": [MLP2, "--param", "mup", "--opt", "adam"],
    "lower": [MLP2],
    "limit-scalars": [MLP2, "--kernels", "--inputs", X1],
    "train": [MLP2, "--data", str(ROOT / "samples" / "data" / "regress10.npz"), "--steps", "2",
              "--width", "16"],
    "unroll": [MLP2, "--param", "mup", "--opt", "adam", "--steps", "2", "--batch", "2"],
    "coordcheck": [MLP2, "--widths", "16,32", "--seeds", "2", "--steps", "1"],
    "limit": [MLP2, "--data", str(ROOT / "samples" / "data" / "regress10.npz"), "--steps", "2",
              "--param", "ntp", "--engine", "test-proxy", "--particles", "16"],
    "converge": [MLP2, "--data", str(ROOT / "samples" / "data" / "regress10.npz"), "--steps",
                 "1", "--param", "ntp", "--center", "--engine", "test-proxy", "--particles",
                 "16", "--widths", "8,16", "--seeds", "2"],
}
TIMING = "seconds"  # wall-clock time: the one key two runs cannot share


def test_every_registered_command_is_exercised():
    build_parser()
    assert set(INVOCATIONS) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(INVOCATIONS))
def test_json_on_stdout_and_json_to_a_file_are_the_same_document(name, capsys, tmp_path):
    argv = [name, *INVOCATIONS[name]]
    assert main([*argv, "--json"]) == 0
    on_stdout = json.loads(capsys.readouterr().out)
    path = tmp_path / "out.json"
    assert main([*argv, "--json", str(path)]) == 0
    text = capsys.readouterr().out
    in_file = json.loads(path.read_text())
    on_stdout.pop(TIMING, None), in_file.pop(TIMING, None)
    assert on_stdout == in_file
    assert in_file["ok"] is True and in_file["command"] == name and in_file["arch"]
    assert all(isinstance(i, str) for i in in_file["inputs"])  # one schema: coordinate names
    assert text.strip() and not text.lstrip().startswith("{")  # the text report, not JSON
    assert main(argv) == 0
    untimed = re.compile(r"\d+\.\d\d s\b")
    assert untimed.sub("T s", capsys.readouterr().out) == untimed.sub("T s", text)


def test_json_keys_name_one_concept_one_way(capsys):
    """The architecture is ``arch`` and the inputs are coordinate names in every document;
    abcd exponents are exact strings."""
    docs = {}
    for name, argv in INVOCATIONS.items():
        assert main([name, *argv, "--json"]) == 0
        docs[name] = json.loads(capsys.readouterr().out)
    assert {d["arch"] for n, d in docs.items() if n not in ("limit-scalars",)} == {"mlp2"}
    assert docs["limit-scalars"]["arch"] == "mlp2_kernels"  # the kernel program it evaluated
    assert docs["check"]["inputs"] == docs["compile"]["inputs"] == docs["exec"]["inputs"]
    exponents = docs["abcd"]["parameters"]["W"]
    assert all(isinstance(exponents[k], str) for k in "abcdACD")


def test_the_module_and_the_console_entry_point_agree(capsys):
    argv = ["abcd", "samples/mlp2.nx", "--param", "mup", "--opt", "adam"]
    done = subprocess.run([sys.executable, "-m", "compiler.cli", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert main([*argv[:1], str(ROOT / argv[1]), *argv[2:]]) == 0
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == capsys.readouterr().out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_progress_redraws_a_few_times_a_second(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("compiler.cli.progress.time.monotonic", lambda: clock[0])
    term, log = _Terminal(), _Log()
    bar, lines = Progress("exec", term), Progress("limit", log)
    for k in range(20_000):  # 20 000 calls over 10 simulated seconds: 2 000 a second
        clock[0] = k * 0.0005
        bar(k, 20_000, "step")
        lines(k, 20_000, "step")
    # the first second is quiet; then at most one redraw per 0.25 s, one log line per 10 s
    assert 30 <= term.getvalue().count("\r[") <= 37
    assert log.getvalue().count("\n") <= 1
    bar.done()
    assert term.getvalue().endswith("\r")


def test_the_executor_callback_formats_only_what_it_shows(monkeypatch):
    clock, formatted = [0.0], []
    monkeypatch.setattr("compiler.cli.progress.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("compiler.cli.progress.format_instruction",
                        lambda ins: formatted.append(ins) or "ins")
    bar = Progress("exec", _Terminal())
    for k in range(4000):  # 2 simulated seconds: quiet for one, then four redraws
        clock[0] = k * 0.0005
        bar.instruction(k, 4000, None)  # type: ignore[arg-type]
    assert len(formatted) == bar.stream.getvalue().count("\r[") == 4
