"""Structured damage to a zip archive, driven by fuzzer bytes: entries removed, duplicated, renamed, replaced or
truncated; declared sizes made huge; bytes flipped; the file cut short."""
import io
import struct
import warnings
import zipfile

import atheris


def entries(archive: bytes) -> list:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        return [(info.filename, z.read(info)) for info in z.infolist()]


def _write(items: list) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
            for name, content in items:
                z.writestr(name, content)
    return out.getvalue()


def _oversize(archive: bytearray, fdp, value: int) -> None:
    """Sets the declared sizes of one central-directory record (and its local header) to `value`."""
    records = [i for i in range(len(archive) - 4) if archive[i:i + 4] == b"PK\x01\x02"]
    if not records:
        return
    central = records[fdp.ConsumeIntInRange(0, len(records) - 1)]
    archive[central + 20:central + 28] = struct.pack("<II", value, value)
    local = struct.unpack("<I", archive[central + 42:central + 46])[0]
    if archive[local:local + 4] == b"PK\x03\x04":
        archive[local + 18:local + 26] = struct.pack("<II", value, value)


def mutate(base: bytes, data: bytes) -> bytes:
    fdp = atheris.FuzzedDataProvider(data)
    items = entries(base)
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        op = fdp.ConsumeIntInRange(0, 5)
        i = fdp.ConsumeIntInRange(0, len(items) - 1) if items else 0
        if not items:
            break
        name, content = items[i]
        if op == 0:
            del items[i]
        elif op == 1:
            items.insert(fdp.ConsumeIntInRange(0, len(items)), (name, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))))
        elif op == 2:
            other = fdp.PickValueInList([items[fdp.ConsumeIntInRange(0, len(items) - 1)][0],
                                         items[0][0].split("/", 1)[0] + "/data/aotinductor/model/model.so"])
            items[i] = (other if fdp.ConsumeBool() else (fdp.ConsumeUnicodeNoSurrogates(24).split("\0")[0] or "x"), content)
        elif op == 3:
            items[i] = (name, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 256)))
        elif op == 4:
            items[i] = (name, content[:fdp.ConsumeIntInRange(0, len(content))])
        else:
            items[i] = (name, content.replace(b"false", b"true ", 1).replace(b"s77", b"__import__('os')", 1))
    archive = bytearray(_write(items))
    if fdp.ConsumeBool():
        _oversize(archive, fdp, fdp.PickValueInList([0xFFFFFFFF, 1 << 31, 1 << 30, len(archive) + 1]))
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        if archive:
            archive[fdp.ConsumeIntInRange(0, len(archive) - 1)] ^= 1 << fdp.ConsumeIntInRange(0, 7)
    if fdp.ConsumeBool():
        del archive[fdp.ConsumeIntInRange(0, len(archive)):]
    return bytes(archive)
