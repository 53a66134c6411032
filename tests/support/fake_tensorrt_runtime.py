"""FakeTensorRT: a fake of the TensorRT Python runtime API (the part trtpack's executor calls), recording every call.
(The builder side is faked by fake_tensorrt_builder.py; the computing stand-in is trtpack.runtime.standin.)

It is NOT TensorRT and runs nothing on a GPU. Its "engine" copies input 0's bytes into output 0 (through the bound
addresses, so a wrong binding shows up as wrong numbers), and its output shapes come from a function of the input
shapes, like a real engine's shape inference.
"""
import ctypes
import threading
import time


class FakeTensorRT:
    def __init__(self, name="tensorrt_rtx", version="1.7.1.116", *, runtime_cache=True, output_shapes=None,
                 profile=None, fail_deserialize=False, fail_execute=False, run_seconds=0.0):
        self.__name__ = name
        self.__version__ = version
        self.calls = []                 # (what, details...) in call order, from every thread
        self.lock = threading.Lock()
        self.runtime_cache = runtime_cache
        self.output_shapes = output_shapes or (lambda shapes: {"y": shapes["x"]})
        self.profile = profile or {}    # input name -> [(min, max)] per dim
        self.fail_deserialize = fail_deserialize
        self.fail_execute = fail_execute
        self.run_seconds = run_seconds
        self.concurrent_runs_seen = 0
        fake = self

        class Logger:
            WARNING = "WARNING"

            def __init__(self, severity):
                fake.record("Logger", severity)

        class Runtime:
            def __init__(self, logger):
                fake.record("Runtime")

            def deserialize_cuda_engine(self, buffer):
                fake.record("deserialize_cuda_engine", bytes(memoryview(buffer)))
                if fake.run_seconds:
                    time.sleep(fake.run_seconds)  # widen the window in which a second thread could deserialize too
                return None if fake.fail_deserialize else FakeEngine(fake)

        self.Logger = Logger
        self.Runtime = Runtime
        self.DataType = FakeDataType
        self.TensorIOMode = FakeTensorIOMode
        self.io = {"x": ("INPUT", "FLOAT"), "y": ("OUTPUT", "FLOAT")}  # the plan's I/O tensors: name -> (mode, dtype)

    def record(self, *call):
        with self.lock:
            self.calls.append(call)

    def named(self, what):
        return [c for c in self.calls if c[0] == what]


class FakeRuntimeCache:
    def __init__(self, fake):
        self.fake = fake
        self.loaded = b""

    def deserialize(self, data):
        self.fake.record("cache.deserialize", bytes(data))
        self.loaded = bytes(data)

    def serialize(self):
        self.fake.record("cache.serialize")
        return bytearray(self.loaded + b"+kernels")


class FakeRuntimeConfig:
    def __init__(self, fake):
        self.fake = fake
        self.cache = None
        if fake.runtime_cache:
            self.create_runtime_cache = lambda: FakeRuntimeCache(fake)

    def set_runtime_cache(self, cache):
        self.fake.record("set_runtime_cache", id(cache))
        self.cache = cache


class FakeDataType:
    FLOAT, HALF, BF16, INT8, INT32, INT64, BOOL, UINT8 = "FLOAT", "HALF", "BF16", "INT8", "INT32", "INT64", "BOOL", "UINT8"


class FakeTensorIOMode:
    INPUT, OUTPUT = "INPUT", "OUTPUT"


class FakeEngine:
    def __init__(self, fake):
        self.fake = fake
        self.num_io_tensors = len(fake.io)

    def get_tensor_name(self, index):
        return list(self.fake.io)[index]

    def get_tensor_mode(self, name):
        return self.fake.io[name][0]

    def get_tensor_dtype(self, name):
        return self.fake.io[name][1]

    def create_runtime_config(self):
        return FakeRuntimeConfig(self.fake)

    def create_execution_context(self, config=None):
        self.fake.record("create_execution_context", config.cache is not None if config else None)
        return FakeContext(self.fake)


class FakeContext:
    def __init__(self, fake):
        self.fake = fake
        self.shapes = {}
        self.addresses = {}
        self.owner = None  # the thread between its first set_input_shape and its execute_async_v3

    def set_input_shape(self, name, shape):
        me = threading.get_ident()
        if self.owner not in (None, me):
            self.fake.concurrent_runs_seen += 1
        self.owner = me
        self.fake.record("set_input_shape", name, tuple(shape), id(self))
        for d, (lo, hi) in zip(shape, self.fake.profile.get(name, [])):
            if not lo <= d <= hi:
                self.owner = None
                return False
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, address):
        self.fake.record("set_tensor_address", name, address)
        self.addresses[name] = address
        return True

    def get_tensor_shape(self, name):
        return self.fake.output_shapes(self.shapes)[name]

    def execute_async_v3(self, stream_handle):
        self.fake.record("execute_async_v3", stream_handle, dict(self.addresses), id(self))
        if self.fake.run_seconds:
            time.sleep(self.fake.run_seconds)
        self.owner = None
        if self.fake.fail_execute:
            return False
        nbytes = 4
        for d in self.shapes["x"]:
            nbytes *= d
        ctypes.memmove(self.addresses["y"], self.addresses["x"], nbytes)  # float32 identity "engine"
        return True
