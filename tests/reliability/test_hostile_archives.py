"""Every bad input in docs/BAD_INPUTS.md, built here, gives the error class and message start the table states.

Hostile archives carry payloads that would create a marker file if any code from the file ran: after each load
attempt the marker must not exist. `python test_hostile_archives.py` prints the table rows.
"""
import io
import json
import os
import pickle
import re
import sys
import warnings
import zipfile

import pytest
import torch

import trtpack
from fuzz import programs

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "..", "docs", "BAD_INPUTS.md")
CASES = {}


def case(name, description):
    def register(build):
        CASES[name] = (description, build)
        return build
    return register


class RunsCode:
    """Unpickling this creates the marker file: the proof that code from a file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")
    program = programs.exported()
    trtpack.save(program, str(folder / "program.ep"))
    trtpack.save(program, str(folder / "program.engine"))
    return folder


def read(path):
    with open(path, "rb") as f:
        return f.read()


def rewrite(src, dst, edit):
    """Copies the zip at src to dst with edit(name, data) -> [(name, data), ...] applied to each entry."""
    with zipfile.ZipFile(src) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = z.namelist()[0].split("/", 1)[0] + "/"
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
            for info in z.infolist():
                for name, data in edit(info.filename[len(root):], z.read(info)):
                    out.writestr(root + name, data)
    return dst


def edited(valid, tmp, edit):
    return rewrite(str(valid / "program.ep"), str(tmp / "bad.ep"), edit)


def replace_entry(target, data):
    return lambda name, old: [(name, data(old) if callable(data) else data)] if name == target else [(name, old)]


# -- .ep archives --------------------------------------------------------------------------------------------------
@case("ep_use_pickle_weight", "a weight stored as a pickle (use_pickle) whose unpickling runs code")
def _(valid, tmp, marker):
    def edit(name, data):
        if name == "data/weights/model_weights_config.json":
            config = json.loads(data)
            config["config"]["bias"]["use_pickle"] = True
            return [(name, json.dumps(config).encode())]
        if name == "data/weights/weight_1":
            buf = io.BytesIO()
            torch.save(RunsCode(marker), buf)
            return [(name, buf.getvalue())]
        return [(name, data)]
    return edited(valid, tmp, edit)


@case("ep_pickled_sample_inputs", "sample inputs that fail torch.load(weights_only=True) (torch retries unsafely)")
def _(valid, tmp, marker):
    buf = io.BytesIO()
    torch.save(RunsCode(marker), buf)
    return edited(valid, tmp, replace_entry("data/sample_inputs/model.pt", buf.getvalue()))


@case("ep_truncated_sample_inputs", "sample inputs cut off inside a pickle opcode (struct.error in torch's loader)")
def _(valid, tmp, marker):
    return edited(valid, tmp, replace_entry("data/sample_inputs/model.pt", b"\x80\x02X\x01\x00"))


@case("ep_eval_in_expression", "a symbolic expression that sympify would eval: __import__('os')...")
def _(valid, tmp, marker):
    evil = f"__import__('os').system('touch {marker}')"
    return edited(valid, tmp, replace_entry(
        "models/model.json", lambda d: re.sub(rb'"expr_str": "[^"]*"', b'"expr_str": ' + json.dumps(evil).encode(),
                                              d, count=1)))


@case("ep_opaque_constant", "a constant stored as an opaque (pickled) object")
def _(valid, tmp, marker):
    config = {"config": {"c": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": False}}}
    return edited(valid, tmp, replace_entry("data/constants/model_constants_config.json",
                                            json.dumps(config).encode()))


@case("ep_duplicate_entry", "models/model.json twice (zip readers may disagree on which one counts)")
def _(valid, tmp, marker):
    return edited(valid, tmp, lambda n, d: [(n, d), (n, d)] if n == "models/model.json" else [(n, d)])


@case("ep_missing_entry", "models/model.json removed")
def _(valid, tmp, marker):
    return edited(valid, tmp, lambda n, d: [] if n == "models/model.json" else [(n, d)])


@case("ep_renamed_entry", "data/weights/weight_0 renamed to data/weights/weight_9")
def _(valid, tmp, marker):
    return edited(valid, tmp, lambda n, d: [("data/weights/weight_9" if n == "data/weights/weight_0" else n, d)])


@case("ep_foreign_entry", "an extra top-level file (evil.py) in the archive")
def _(valid, tmp, marker):
    return edited(valid, tmp, lambda n, d: [(n, d), ("evil.py", b"print(1)")] if n == "archive_format" else [(n, d)])


@case("ep_with_aoti_library", "an .ep holding data/aotinductor/ (a compiled library AOTInductor would dlopen)")
def _(valid, tmp, marker):
    return edited(valid, tmp, lambda n, d: [(n, d), ("data/aotinductor/model/evil.so", b"\x7fELF")]
                  if n == "archive_format" else [(n, d)])


@case("ep_legacy_layout", "a torch 2.7-style archive (entries at the zip root, serialized_*.pt pickles)")
def _(valid, tmp, marker):
    path = str(tmp / "bad.ep")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("version", "8.0")
        z.writestr("serialized_exported_program.json", "{}")
        z.writestr("serialized_state_dict.pt", b"")
    return path


@case("ep_oversized_length", "a zip entry declaring 4 GiB - 1 bytes in a 20 KiB file")
def _(valid, tmp, marker):
    data = bytearray(read(valid / "program.ep"))
    central = data.index(b"PK\x01\x02")
    data[central + 20:central + 28] = b"\xff" * 8
    path = str(tmp / "bad.ep")
    with open(path, "wb") as f:
        f.write(data)
    return path


@case("ep_truncated", "the archive cut in half")
def _(valid, tmp, marker):
    path = str(tmp / "bad.ep")
    with open(path, "wb") as f:
        f.write(read(valid / "program.ep")[:10000])
    return path


@case("ep_weight_bytes_flipped", "plan bytes inside the archive changed (header's plan size)")
def _(valid, tmp, marker):
    def flip(data):
        data = bytearray(data)
        data[16] ^= 0xFF  # the plan header's size field
        return bytes(data)
    return edited(valid, tmp, replace_entry("data/weights/weight_0", flip))


@case("ep_meta_tampered", "the engine record's plan_size changed in models/model.json")
def _(valid, tmp, marker):
    return edited(valid, tmp, replace_entry("models/model.json", lambda d: d.replace(b'plan_size\\":128',
                                                                                     b'plan_size\\":129')))


def model_edit(edit):
    """Replaces models/model.json by edit(parsed json)."""
    def apply(old):
        model = json.loads(old)
        edit(model)
        return json.dumps(model).encode()
    return replace_entry("models/model.json", apply)


@case("ep_guards_code_exec", "guards_code (torch execs it) holding __import__('os').system(...)")
def _(valid, tmp, marker):
    return edited(valid, tmp, model_edit(lambda m: m.update(guards_code=[f"__import__('os').system('touch {marker}')"])))


@case("ep_guard_attribute", "a guard that reaches an attribute: L['x'].size()[0].__class__")
def _(valid, tmp, marker):
    return edited(valid, tmp, model_edit(lambda m: m.update(guards_code=["L['x'].size()[0].__class__ == 1"])))


@case("ep_range_key_eval", "a range_constraints key that is code, not a symbol")
def _(valid, tmp, marker):
    return edited(valid, tmp, model_edit(lambda m: m.update(range_constraints={
        f"__import__('os').system('touch {marker}')": {"min_val": 1, "max_val": 2}})))


@case("ep_power_bomb", "an expression 9**9**9 (sympy would compute it for hours)")
def _(valid, tmp, marker):
    return edited(valid, tmp, replace_entry(
        "models/model.json", lambda d: re.sub(rb'"expr_str": "[^"]*"', b'"expr_str": "9**9**9"', d, count=1)))


@case("ep_huge_range", "a symbol range up to 10**30 (past 64 bits)")
def _(valid, tmp, marker):
    return edited(valid, tmp, model_edit(lambda m: m.update(range_constraints={
        "s77": {"min_val": 1, "max_val": 10 ** 30}})))


@case("ep_stride0_plan", "the plan tensor declared as 2 GiB with stride 0 over its 128 stored bytes")
def _(valid, tmp, marker):
    def edit(data):
        config = json.loads(data)
        meta = config["config"]["plan"]["tensor_meta"]
        meta["sizes"], meta["strides"] = [{"as_int": 1 << 31}], [{"as_int": 0}]
        return json.dumps(config).encode()
    return edited(valid, tmp, replace_entry("data/weights/model_weights_config.json", edit))


@case("ep_plan_bytes_changed", "plan bytes changed inside the archive, CRC updated (only the plan's digest sees it)")
def _(valid, tmp, marker):
    return edited(valid, tmp, replace_entry("data/weights/weight_0", lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:]))


def raw_edit(valid, tmp, edit):
    data = bytearray(read(valid / "program.ep"))
    data = edit(data)
    path = str(tmp / "bad.ep")
    with open(path, "wb") as f:
        f.write(data)
    return path


def flip_byte(valid, tmp, anchor: bytes, offset: int):
    """The valid archive with one bit flipped in place, `offset` bytes after the first `anchor`."""
    def flip(data):
        data[data.index(anchor) + offset] ^= 1
        return data
    return raw_edit(valid, tmp, flip)


@case("ep_bad_crc", "a byte of a reference weight flipped in place (its entry's CRC-32 no longer matches)")
def _(valid, tmp, marker):
    return flip_byte(valid, tmp, torch.arange(programs.FEATURES, dtype=torch.float32).numpy().tobytes(), 5)


@case("ep_plan_flipped", "a byte of the plan flipped in place (CRC-32 not updated; the plan's digest is checked)")
def _(valid, tmp, marker):
    return flip_byte(valid, tmp, b"vtrt", 100)


@case("ep_second_central_directory", "a second zip (its own central directory) appended to the archive")
def _(valid, tmp, marker):
    return raw_edit(valid, tmp, lambda data: data + read(valid / "program.ep"))


@case("ep_prepended_data", "1 KiB of bytes before the first entry (offsets shifted for some readers only)")
def _(valid, tmp, marker):
    return raw_edit(valid, tmp, lambda data: bytes(1024) + data)


@case("ep_archive_comment", "a zip comment after the end record")
def _(valid, tmp, marker):
    def comment(data):
        data[-2:] = (4).to_bytes(2, "little")
        return data + b"evil"
    return raw_edit(valid, tmp, comment)


@case("ep_zip_version_too_new", "a central record that needs zip version 6.5 to extract (Python's zipfile refuses it)")
def _(valid, tmp, marker):
    def newer(data):
        central = data.index(b"PK\x01\x02")
        data[central + 6:central + 8] = (65).to_bytes(2, "little")  # version needed to extract
        return data
    return raw_edit(valid, tmp, newer)


@case("ep_directory_attribute", "the version record marked a directory in its central record (miniz skips its bytes)")
def _(valid, tmp, marker):
    def directory(data):
        central = data.index(b"PK\x01\x02")
        while not data[central + 46:central + 46 + int.from_bytes(data[central + 28:central + 30], "little")] \
                .endswith(b"/.data/version"):
            central = data.index(b"PK\x01\x02", central + 1)
        data[central + 38:central + 42] = (0x10).to_bytes(4, "little")  # external attributes: MS-DOS directory
        return data
    return raw_edit(valid, tmp, directory)


@case("ep_directory_name_with_data", "an entry named as a directory (byteorde/) that holds bytes (miniz skips them)")
def _(valid, tmp, marker):
    return raw_edit(valid, tmp, lambda data: data.replace(b"/byteorder", b"/byteorde/"))


@case("ep_overlapping_entries", "300 entries whose central records all point at the same 2 MiB of data")
def _(valid, tmp, marker):
    path = str(tmp / "bad.ep")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("program/data/weights/weight_0", bytes(2 << 20))
    data = bytearray(read(path))
    central = data.index(b"PK\x01\x02")
    record, end = bytes(data[central:-22]), bytes(data[-22:])
    copies = [record.replace(b"weight_0", f"w_{i:06d}".encode()[:8]) for i in range(300)]
    body = bytes(data[:central]) + b"".join(copies)
    end = bytearray(end)
    end[8:12] = (300).to_bytes(2, "little") * 2
    end[12:16] = len(b"".join(copies)).to_bytes(4, "little")
    with open(path, "wb") as f:
        f.write(body + bytes(end))
    return path


@case("ep_path_climbing_name", "an entry named program/../../evil.py")
def _(valid, tmp, marker):
    return edited(valid, tmp, lambda n, d: [(n, d), ("../../evil.py", b"print(1)")] if n == "archive_format" else [(n, d)])


@case("ep_random_bytes", "random bytes named .ep (no zip signature: read as a plan)")
def _(valid, tmp, marker):
    path = str(tmp / "bad.ep")
    with open(path, "wb") as f:
        f.write(os.urandom(1000))
    return path


@case("missing_file", "a path that does not exist")
def _(valid, tmp, marker):
    return str(tmp / "nothing.ep")


# -- .engine + sidecar ---------------------------------------------------------------------------------------------
def engine_copy(valid, tmp, plan=None, sidecar=None):
    path = str(tmp / "bad.engine")
    with open(path, "wb") as f:
        f.write(read(valid / "program.engine") if plan is None else plan)
    if sidecar is not False:
        with open(path + ".json", "wb") as f:
            f.write(read(valid / "program.engine.json") if sidecar is None else sidecar)
    return path


@case("engine_no_sidecar", ".engine without its .json sidecar")
def _(valid, tmp, marker):
    return engine_copy(valid, tmp, sidecar=False)


@case("engine_sidecar_not_utf8", "sidecar with invalid UTF-8")
def _(valid, tmp, marker):
    return engine_copy(valid, tmp, sidecar=b'{"name": "\xff\xfe"}')


@case("engine_sidecar_huge", "sidecar of 1 GiB (sparse)")
def _(valid, tmp, marker):
    path = engine_copy(valid, tmp)
    os.truncate(path + ".json", 1 << 30)
    return path


@case("engine_sidecar_not_json", "sidecar that is not JSON")
def _(valid, tmp, marker):
    return engine_copy(valid, tmp, sidecar=b"plan_size = 128")


@case("engine_sidecar_lone_surrogate", "sidecar JSON with a lone surrogate escape in a key")
def _(valid, tmp, marker):
    meta = read(valid / "program.engine.json").replace(b'"name":', b'"\\udc80":', 1)
    return engine_copy(valid, tmp, sidecar=meta)


@case("engine_huge_plan_size", "sidecar declaring plan_size 1 TiB")
def _(valid, tmp, marker):
    meta = json.loads(read(valid / "program.engine.json"))
    meta["plan_size"] = 1 << 40
    return engine_copy(valid, tmp, sidecar=json.dumps(meta).encode())


@case("engine_truncated_plan", "plan file cut to 100 bytes")
def _(valid, tmp, marker):
    return engine_copy(valid, tmp, plan=read(valid / "program.engine")[:100])


@case("engine_empty_plan", "empty plan file")
def _(valid, tmp, marker):
    return engine_copy(valid, tmp, plan=b"")


@case("engine_bad_magic", "plan whose header magic is not vtrt")
def _(valid, tmp, marker):
    return engine_copy(valid, tmp, plan=b"XXXX" + read(valid / "program.engine")[4:])


@case("engine_newer_format", "sidecar of format_version [2, 0]")
def _(valid, tmp, marker):
    meta = json.loads(read(valid / "program.engine.json"))
    meta["format_version"] = [2, 0]
    return engine_copy(valid, tmp, sidecar=json.dumps(meta).encode())


@case("engine_sidecar_fifo", "the sidecar is a FIFO (reading it would wait forever)")
def _(valid, tmp, marker):
    path = engine_copy(valid, tmp, sidecar=False)
    os.mkfifo(path + ".json")
    return path


@case("engine_plan_bytes_changed", "a plan byte changed after the sidecar was written (same size and header)")
def _(valid, tmp, marker):
    plan = bytearray(read(valid / "program.engine"))
    plan[100] ^= 1
    return engine_copy(valid, tmp, plan=bytes(plan))


@case("engine_sparse_100_gib", "a sparse 100 GiB .engine beside a valid sidecar")
def _(valid, tmp, marker):
    path = engine_copy(valid, tmp)
    os.truncate(path, 100 << 30)
    return path


def outcome(path, tmp):
    """(error class, message start with the path shown as FILE) of trtpack.load, or ('ok', '')."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trtpack.load(path)
    except Exception as e:  # noqa: BLE001  (the class is what is checked)
        message = str(e).replace(repr(path), "FILE").replace(path, "FILE").replace(str(tmp), "DIR")
        return type(e).__name__, message.splitlines()[0][:90]
    return "ok", ""


def documented_rows():
    with open(DOC, encoding="utf-8") as f:
        rows = [cells for cells in (line.split("|")[1:-1] for line in f if line.startswith("| `"))
                if len(cells) == 4 and cells[2].strip().endswith("Error`")]
    return {cells[0].strip().strip("`"): (cells[2].strip().strip("`"), cells[3].strip().strip("`").replace("\\|", "|"))
            for cells in rows}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gives_the_documented_trtpack_error_and_runs_no_code(name, valid, tmp_path):
    marker = str(tmp_path / "code-ran")
    path = CASES[name][1](valid, tmp_path, marker)
    error, message = outcome(path, tmp_path)
    assert not os.path.exists(marker), "code from the file ran"
    assert error in ("FormatError", "IncompatibleEngineError", "TrtpackError", "UntrustedCodeError"), (error, message)
    assert documented_rows().get(name) == (error, message), \
        f"docs/BAD_INPUTS.md row for {name} is out of date; it should read: {error} | {message}"


def inspect_outcome(path, tmp):
    """outcome() of trtpack.inspect."""
    try:
        trtpack.inspect(path)
    except Exception as e:  # noqa: BLE001  (the class is what is checked)
        message = str(e).replace(repr(path), "FILE").replace(path, "FILE").replace(str(tmp), "DIR")
        return type(e).__name__, message.splitlines()[0][:90]
    return "ok", ""


STRUCTURAL = "is not a safe trtpack ExportedProgram archive"  # ep_check's refusals: structure, before torch reads


@pytest.mark.parametrize("name", sorted(name for name in CASES if name.startswith("ep_")))
def test_inspect_refuses_what_load_refuses_on_structure(name, valid, tmp_path):
    """inspect never vouches for an .ep whose structure load refuses (layout, entries, guards, expressions,
    pickles); only what needs every byte read (CRC-32, the plans' digests) is load's alone."""
    marker = str(tmp_path / "code-ran")
    path = CASES[name][1](valid, tmp_path, marker)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trtpack.load(path)
        refusal = ""
    except trtpack.TrtpackError as e:
        refusal = str(e)
    loaded, inspected = outcome(path, tmp_path), inspect_outcome(path, tmp_path)
    assert not os.path.exists(marker), "code from the file ran"
    if STRUCTURAL in refusal and "CRC-32" not in refusal:
        assert inspected == loaded
    else:  # reading every byte (CRC-32, digests) or torch's own reader: load's alone
        assert STRUCTURAL not in inspected[1], inspected


@pytest.mark.parametrize("name", ["ep_guards_code_exec", "ep_second_central_directory"])
def test_cli_inspect_exits_bad_input_on_a_file_load_refuses(name, valid, tmp_path):
    from tests.support import python_env
    from trtpack.cli import main as cli

    path = CASES[name][1](valid, tmp_path, str(tmp_path / "code-ran"))
    code, stdout, stderr = python_env.run_cli("inspect", path)
    assert code == cli.EXIT_BAD_INPUT, stdout + stderr
    assert STRUCTURAL in stderr and "runs on this machine" not in stdout


def test_the_archive_checks_dtype_table_is_torchs():
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    from trtpack.artifacts import ep_check
    assert ep_check.serialized_dtypes() == dict(_SERIALIZE_TO_TORCH_DTYPE)


def test_inspect_shows_the_digest_load_checks(valid):
    info = trtpack.inspect(str(valid / "program.ep"))
    engine = info["engines"][0]
    assert len(engine["plan_xxh3"]) == 32 and engine["plan_sha256"]
    from trtpack.cli import artifact_commands
    text = artifact_commands.format_inspect(info)
    assert f"xxh3 {engine['plan_xxh3'][:16]}" in text and "sha256" not in text


def test_torch_export_load_itself_would_run_the_pickled_weight(valid, tmp_path):
    # Why the guard exists: torch.export.load on the same file runs the payload (torch 2.11-2.13).
    marker = str(tmp_path / "code-ran")
    path = CASES["ep_use_pickle_weight"][1](valid, tmp_path, marker)
    os.rename(path, path[:-3] + ".pt2")
    try:
        torch.export.load(path[:-3] + ".pt2")
    except Exception:  # noqa: BLE001  (the payload runs before torch notices the type is wrong)
        pass
    assert os.path.exists(marker)


class _WithByteTable(torch.nn.Module):
    """The guarded program plus a uint8 buffer that is not a plan: its CRC is checked after torch reads it."""

    def __init__(self):
        super().__init__()
        plan = programs.plan_tensor()
        self.inner = programs.Guarded(plan, programs.meta_for(plan))
        self.register_buffer("table", torch.arange(7, 7 + 200, dtype=torch.uint8))

    def forward(self, x):
        return self.inner(x) + self.table[:programs.FEATURES].float()


def test_a_byte_buffer_that_is_not_a_plan_is_still_crc_checked(tmp_path):
    path = str(tmp_path / "table.ep")
    program = torch.export.export(_WithByteTable(), (torch.randn(2, programs.FEATURES),))
    trtpack.save(program, path)
    data = bytearray(read(path))
    data[data.index(bytes(range(7, 7 + 200))) + 150] ^= 1  # a byte no output reads: only the CRC can tell
    with open(path, "wb") as f:
        f.write(data)
    with pytest.raises(trtpack.FormatError, match="fails its CRC-32 check"):
        trtpack.load(path)


def test_bad_crc_loads_only_with_verify_false(valid, tmp_path):
    path = CASES["ep_bad_crc"][1](valid, tmp_path, str(tmp_path / "marker"))
    with pytest.raises(trtpack.FormatError, match="CRC-32"):
        trtpack.load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert trtpack.load(path, verify=False).format == "exported_program"


def test_plan_digest_mismatch_names_the_engine(valid, tmp_path):
    for name in ("ep_plan_bytes_changed", "ep_plan_flipped", "engine_plan_bytes_changed"):
        path = CASES[name][1](valid, tmp_path, str(tmp_path / "marker"))
        with pytest.raises(trtpack.FormatError, match="engine 'trt_region_0'.*XXH3-128") as error:
            trtpack.load(path)
        assert error.value.field == "plan_xxh3"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trtpack.load(path, verify=False)


@pytest.mark.parametrize("name", ["../evil.so", "/abs/evil.so", "a\\..\\evil.so", "./evil.so", "a//evil.so"])
def test_trusted_pt2_with_a_path_climbing_entry_is_refused_before_extraction(name, tmp_path):
    path = str(tmp_path / "package.engine")  # the suffix does not matter: the bytes say AOTInductor
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("package/data/aotinductor/model/model.wrapper.so", b"\x7fELF")
        z.writestr("package/data/aotinductor/model/" + name, b"\x7fELF")
    before = set(os.listdir(tmp_path.parent))
    with pytest.raises(trtpack.FormatError, match="not a plain relative path"):
        trtpack.load(path, trust_native_code=True)
    assert set(os.listdir(tmp_path.parent)) == before


def test_a_program_with_real_input_guards_saves_and_loads(tmp_path):
    class Guarded(torch.nn.Module):
        def forward(self, x, y):
            return x.reshape(-1) + y[: x.shape[0] * x.shape[1]]

    program = torch.export.export(Guarded(), (torch.randn(4, 3), torch.randn(20)), dynamic_shapes={
        "x": {0: torch.export.Dim("b", min=2, max=64)}, "y": {0: torch.export.Dim("c", min=6, max=500)}})
    assert program._guards_code, "torch wrote no guard for this program; the test needs one"
    path = str(tmp_path / "guarded.ep")
    trtpack.save(program, path)
    loaded = trtpack.load(path)
    x, y = torch.randn(5, 3), torch.randn(40)
    torch.testing.assert_close(loaded(x, y), x.reshape(-1) + y[:15])


@pytest.mark.parametrize("text", ["s0", "2*s0 + 1", "Max(1, s0)", "FloorDiv(s0, 2)", "(s0 - 3)//2", "Eq(s0, 4)",
                                  "Symbol('s77', positive=True, integer=True)",
                                  "Mul(Integer(3), Symbol('s77', positive=True, integer=True))",
                                  "Pow(s0, Integer(2))", "s0**2 + 1"])
def test_expression_grammar_accepts_what_torch_writes(text):
    from trtpack.artifacts import ep_check
    ep_check.check_grammar(text, "expr")


@pytest.mark.parametrize("text", ["9**9**9", "s0**9", "s0**2**2", "Pow(s0, Pow(s0, Integer(2)))", "__import__('os')", "s0.__class__", "open('x')", "1e999999",
                                  "9" * 30, "lambda: 1", "(" * 40 + "s0" + ")" * 40, "s0 if 1 else 2", "x[0]",
                                  "Symbol('s0', evil=True)", "'a' + 'b'", "s0;1", "s0\n1",
                                  "Pow(Integer(9), Integer(387420489))", "PowByNatural(Integer(9), Integer(99))"])
def test_expression_grammar_refuses_anything_else(text):
    from trtpack.artifacts import ep_check
    with pytest.raises(trtpack.FormatError):
        ep_check.check_grammar(text, "expr")


@pytest.mark.parametrize("text", ["L['x'].size()[0] > 5", "3*L['x'].size()[0] <= L['y'].size()[0]",
                                  "L['x'].size()[0] != 1 and L['x'].stride()[0] == 3"])
def test_guard_grammar_accepts_torch_guards(text):
    from trtpack.artifacts import ep_check
    ep_check.check_grammar(text, "guard")


@pytest.mark.parametrize("text", ["L['x'].size()[0].__class__ == 1", "L['x'].numpy()", "L[\"x\"].size()[0]",
                                  "math.pow(2, 2)", "torch.ones(1)", "L['x'].size()[0] ** 99", "exec('1')",
                                  "[1 for _ in L]", "L['x'].size()[0] == 1, print(1)"])
def test_guard_grammar_refuses_anything_else(text):
    from trtpack.artifacts import ep_check
    with pytest.raises(trtpack.FormatError):
        ep_check.check_grammar(text, "guard")


if __name__ == "__main__":
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        program = programs.exported()
        trtpack.save(program, str(base / "program.ep"))
        trtpack.save(program, str(base / "program.engine"))
        for name in sorted(CASES):
            tmp = Path(tempfile.mkdtemp(dir=folder))
            error, message = outcome(CASES[name][1](base, tmp, str(tmp / "code-ran")), tmp)
            print(f"| `{name}` | {CASES[name][0]} | `{error}` | `{message.replace('|', chr(92) + '|')}` |")
    sys.exit(0)
