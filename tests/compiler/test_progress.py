"""Progress: each stage and region step with its time on a terminal, nothing when stdout is not a terminal."""
import io
import re

import torch

import trtpack
from trtpack.compiler.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_sees_each_stage_and_region_step_with_times():
    out = Terminal()
    progress = Progress(out)
    with progress.stage("export"):
        pass
    progress.step("trt_region_0", "cache miss", 0.01)
    lines = [line.split("\r\x1b[K")[-1] for line in out.getvalue().split("\n")]
    assert re.fullmatch(r"trtpack \[ *\d+\.\ds\] export \d+\.\d\ds", lines[0])
    assert re.fullmatch(r"trtpack \[ *\d+\.\ds\] trt_region_0: cache miss 0\.01s", lines[1])
    assert "export" in progress.seconds


def test_nothing_is_written_when_stdout_is_not_a_terminal(capfd):
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()
    trtpack.compile(model, (torch.randn(2, 8),), targets=["sm86"], min_block_size=1)
    assert capfd.readouterr().out == ""
    progress = Progress(io.StringIO())
    with progress.stage("export"):
        pass
    assert progress.stream.getvalue() == "" and progress.seconds["export"] >= 0
