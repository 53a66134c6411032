"""Fuzz target: trtpack's zip layout reader against the readers that load the file afterwards.

Input byte 0 picks the mode: even = the rest is the archive; odd = the rest drives structural damage to a valid .ep
(zip_mutations.damage_layout: second central directory, prepended or trailing bytes, comments, overlapping or gapped
entries, shifted offsets, data descriptors and CRCs changed). The rule: whenever zip_layout accepts an archive and
its CRCs, Python's zipfile and torch's PyTorchFileReader (miniz, what torch.export.load uses) must see exactly the
same entries with exactly the same bytes; otherwise the check and the reader disagree (a finding).
"""
import io
import os
import sys
import tempfile
import zipfile

import atheris
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import main, quiet
with atheris.instrument_imports(include=["trtpack.artifacts.zip_layout"]):
    from trtpack.artifacts import zip_layout
import zip_mutations

from fuzz import programs

WORK = tempfile.mkdtemp(prefix="trtpack_fuzz_zip_")
TARGET = os.path.join(WORK, "archive.ep")


quiet()
BASE = programs.saved_ep_bytes(WORK)


def _same_everywhere(data: bytes, entries: list) -> None:
    expected = {e.name: data[e.data_offset:e.data_offset + e.size] for e in entries}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        seen = {info.filename: z.read(info) for info in z.infolist()}
    assert seen == expected, f"zipfile reads other entries: {sorted(seen)[:5]} vs {sorted(expected)[:5]}"
    root = entries[0].name.split("/", 1)[0] + "/"
    if all(name.startswith(root) for name in expected):
        try:
            reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        except (RuntimeError, UnicodeDecodeError):  # torch refuses the archive outright (a version record of 0;
            return  # its message may even quote bytes pybind cannot decode): ep.read_program makes that a FormatError

        records = set(reader.get_all_records())
        assert records == {name[len(root):] for name in expected}, f"miniz lists {sorted(records)[:5]}"
        for name, content in expected.items():
            assert bytes(reader.get_record(name[len(root):])) == content, f"miniz reads other bytes for {name}"


def test_one_input(data: bytes) -> None:
    if not data:
        return
    archive = data[1:] if data[0] % 2 == 0 else zip_mutations.damage_layout(BASE, data[1:])
    with open(TARGET, "wb") as f:
        f.write(archive)
    fd = os.open(TARGET, os.O_RDONLY)
    try:
        entries = zip_layout.read_layout(fd, len(archive))
        zip_layout.check_crcs(fd, entries)
    except zip_layout.LayoutError:
        return
    finally:
        os.close(fd)
    if entries:
        _same_everywhere(archive, entries)


if __name__ == "__main__":
    main(test_one_input)
