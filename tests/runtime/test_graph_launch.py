"""The native repoint-and-launch of a whole-program CUDA graph (runtime/graph_launch.c, through
trtpack.runtime.graph_nodes.launch_of), on the CPU: the real library, called with fake driver entry points (ctypes
callbacks that record their calls) in place of libcuda's. What the driver then does on a GPU is
tests/gpu/test_gpu.py's."""
import ctypes

import pytest

from trtpack.runtime import graph_nodes

SET = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
LAUNCH = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
CURRENT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_void_p))
EXEC, CONTEXT, IN_NODE, OUT_NODE, STREAM = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000


class FakeDriver:
    """cuGraphExecMemcpyNodeSetParams, cuGraphLaunch and cuCtxGetCurrent as ctypes callbacks, recording each call
    (set: the node and the addresses its params hold then) and answering what the test sets."""

    def __init__(self):
        self.calls, self.refuse, self.launch_result, self.current = [], set(), 0, CONTEXT

        def set_params(graph_exec, node, params, context):
            p = graph_nodes.Memcpy3D.from_address(params)
            self.calls.append(("set", graph_exec, node, p.srcDevice, p.dstDevice, context))
            return 1 if {p.srcDevice, p.dstDevice} & self.refuse else 0

        def launch(graph_exec, stream):
            self.calls.append(("launch", graph_exec, stream))
            return self.launch_result

        def current(out):
            out[0] = self.current
            return 0

        self.cuGraphExecMemcpyNodeSetParams, self.cuGraphLaunch = SET(set_params), LAUNCH(launch)
        self.cuCtxGetCurrent = CURRENT(current)

    def __getitem__(self, name):
        return getattr(self, name)


def node(driver, handle, source, destination):
    params = graph_nodes.Memcpy3D(srcDevice=source, dstDevice=destination, WidthInBytes=64)
    return graph_nodes.Node(driver, EXEC, handle, params, CONTEXT)


@pytest.fixture
def setup():
    function = graph_nodes._launch_function()
    if function is None:
        pytest.fail("libtrtpack_graph_launch.so not found (build it: ./bazelw build //...)")
    driver = FakeDriver()
    in_node, out_node = node(driver, IN_NODE, 0xA0, 0xB0), node(driver, OUT_NODE, 0xC0, 0xD0)
    return driver, in_node, out_node, graph_nodes.launch_of(in_node, out_node, driver, function)


def test_repoints_only_what_changed_then_launches_on_the_given_stream(setup):
    driver, in_node, out_node, launch = setup
    assert launch(0xA1, 0xD1, STREAM) == graph_nodes.LAUNCHED
    assert driver.calls == [("set", EXEC, IN_NODE, 0xA1, 0xB0, CONTEXT), ("set", EXEC, OUT_NODE, 0xC0, 0xD1, CONTEXT),
                            ("launch", EXEC, STREAM)]
    assert (in_node.source, out_node.destination) == (0xA1, 0xD1)  # the nodes' params are what the library wrote
    driver.calls.clear()
    assert launch(0xA1, 0xD2, STREAM) == graph_nodes.LAUNCHED
    assert driver.calls == [("set", EXEC, OUT_NODE, 0xC0, 0xD2, CONTEXT), ("launch", EXEC, STREAM)]
    driver.calls.clear()
    assert launch(0xA1, 0xD2, 0) == graph_nodes.LAUNCHED  # the legacy default stream is a null handle
    assert driver.calls == [("launch", EXEC, None)]


def test_another_current_context_changes_nothing(setup):
    driver, in_node, out_node, launch = setup
    driver.current = CONTEXT + 1
    assert launch(0xA1, 0xD1, STREAM) == graph_nodes.OTHER_CONTEXT
    assert driver.calls == [] and (in_node.source, out_node.destination) == (0xA0, 0xD0)


def test_a_refused_address_is_put_back_and_nothing_launches(setup):
    driver, in_node, out_node, launch = setup
    driver.refuse = {0xA1}
    assert launch(0xA1, 0xD1, STREAM) == graph_nodes.SOURCE_REFUSED
    assert in_node.source == 0xA0 and out_node.destination == 0xD0 and driver.calls[-1][0] == "set"
    driver.refuse, driver.calls = {0xD1}, []
    assert launch(0xA2, 0xD1, STREAM) == graph_nodes.DESTINATION_REFUSED
    assert in_node.source == 0xA2 and out_node.destination == 0xD0  # the input's repoint stands, as a Python one would
    assert [call[0] for call in driver.calls] == ["set", "set"]
    # the Python setters see and keep the same params
    assert out_node.set_destination(0xD3) and out_node.destination == 0xD3
    assert not out_node.set_destination(0xD1) and out_node.destination == 0xD3


def test_a_failed_launch_reports_its_cuda_result(setup):
    driver, _, _, launch = setup
    driver.launch_result = 700  # CUDA_ERROR_ILLEGAL_ADDRESS
    assert launch(0xA0, 0xD0, STREAM) == graph_nodes.LAUNCH_FAILED + 700


def test_the_launch_function_alone_keeps_what_it_points_at_alive():
    import gc
    import weakref

    driver = FakeDriver()
    in_node, out_node = node(driver, IN_NODE, 0xA0, 0xB0), node(driver, OUT_NODE, 0xC0, 0xD0)
    launch = graph_nodes.launch_of(in_node, out_node, driver, graph_nodes._launch_function())
    params = weakref.ref(in_node.params)
    del in_node, out_node
    gc.collect()
    assert params() is not None  # the nodes are gone; the native call still reads their params
    assert launch(0xA5, 0xD5, STREAM) == graph_nodes.LAUNCHED and params().srcDevice == 0xA5
