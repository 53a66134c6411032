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
    if central + 46 > len(archive):  # the signature in a name near the end, not a record
        return
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


def _offsets_of(archive: bytes, signature: bytes) -> list:
    found, pos = [], archive.find(signature)
    while pos != -1:
        found.append(pos)
        pos = archive.find(signature, pos + 1)
    return found


def damage_layout(base: bytes, data: bytes) -> bytes:
    """Layout-level damage to a valid archive: the tricks that make zip readers disagree."""
    fdp = atheris.FuzzedDataProvider(data)
    archive = bytearray(base)
    for _ in range(fdp.ConsumeIntInRange(1, 3)):
        op = fdp.ConsumeIntInRange(0, 8)
        try:
            central = _offsets_of(bytes(archive), b"PK\x01\x02")
            local = _offsets_of(bytes(archive), b"PK\x03\x04")
            if op == 0:  # a second archive appended (its own central directory)
                archive += base[:fdp.ConsumeIntInRange(0, len(base))] if fdp.ConsumeBool() else _write(
                    [("archive/evil", fdp.ConsumeBytes(32))])
            elif op == 1:  # bytes prepended
                archive[:0] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
            elif op == 2:  # a comment
                archive[-2:] = struct.pack("<H", fdp.ConsumeIntInRange(0, 8))
                archive += fdp.ConsumeBytes(8)
            elif op == 3 and central:  # a central record's local offset moved (overlap or gap)
                at = fdp.PickValueInList(central)
                old = struct.unpack_from("<I", archive, at + 42)[0]
                new = fdp.PickValueInList(local + [old + fdp.ConsumeIntInRange(-64, 64)])
                struct.pack_into("<I", archive, at + 42, max(0, min(new, 0xFFFFFFFF)))
            elif op == 4 and central:  # a central record's CRC or sizes changed
                at = fdp.PickValueInList(central) + fdp.PickValueInList([16, 20, 24])
                struct.pack_into("<I", archive, at, fdp.ConsumeIntInRange(0, 0xFFFFFFFF))
            elif op == 5:  # a data descriptor changed
                descriptors = _offsets_of(bytes(archive), b"PK\x07\x08")
                if descriptors:
                    at = fdp.PickValueInList(descriptors) + fdp.ConsumeIntInRange(4, 15)
                    archive[at] ^= 1 << fdp.ConsumeIntInRange(0, 7)
            elif op == 6:  # an end record field changed (entry count, directory size or offset)
                at = len(archive) - 22 + fdp.PickValueInList([8, 10, 12, 16])
                archive[at] ^= 1 << fdp.ConsumeIntInRange(0, 7)
            elif op == 7 and central:  # a central record duplicated (same or another name)
                at = fdp.PickValueInList(central)
                end = next((c for c in central if c > at), len(archive) - 22 - 76)
                archive[end:end] = archive[at:end]
            elif op == 8 and local:  # a byte inside an entry changed (its CRC no longer matches)
                at = fdp.ConsumeIntInRange(0, len(archive) - 1)
                archive[at] ^= 1 << fdp.ConsumeIntInRange(0, 7)
        except (IndexError, struct.error):
            pass  # an offset this op found lies too near the end (a signature in appended bytes): no damage
    return bytes(archive)
