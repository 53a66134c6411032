"""A region with no inputs (e.g. a decoder's constant causal mask) calls the ops with an empty input list.
AOTInductor hands that list to the kernel as None; the boxed kernels (runtime/boxed.h) accept it, so the program
runs in .ep, in a .pt2 from Python and in //tools:run_pt2."""
import torch

import trtpack  # noqa: F401
from tests.support import cpp_binaries
from tests.support.records import make_record
from trtpack.artifacts import pt2


class ConstantRegion(torch.nn.Module):
    def __init__(self):
        super().__init__()
        plan, meta = make_record([], [("mask", "float32", [4])], {})
        self.register_buffer("plan", plan)
        self.meta = meta

    def forward(self, x):
        usable = torch.ops.trtpack.engine_usable([], self.plan, self.meta)
        mask = torch.cond(usable, lambda: torch.ops.trtpack.execute_engine([], self.plan, self.meta)[0],
                          lambda: torch.arange(4, dtype=torch.float32), ())
        return x + mask


def test_no_input_region_runs_in_ep_pt2_and_run_pt2(tmp_path):
    model, x = ConstantRegion(), torch.randn(4)
    expected = x + torch.arange(4, dtype=torch.float32)
    program = torch.export.export(model, (x,))
    torch.testing.assert_close(program.module()(x), expected)
    path = pt2.package(program, str(tmp_path / "const.pt2"))
    torch.testing.assert_close(pt2.load(path)(x), expected)
    outputs, _, _ = cpp_binaries.run_pt2(path, [x], tmp_path)
    torch.testing.assert_close(outputs[0], expected)
