"""trtpack's own reader of a zip archive's layout, run before any other reader (torch's miniz, AOTInductor, Python's
zipfile) sees the file.

It accepts only the layout the writers trtpack uses produce (torch's miniz writer for .ep and .pt2, Python's zipfile
for the manifest appended to a .pt2): stored (uncompressed) entries, laid end to end from byte 0, then one central
directory, then the end records, with no byte unaccounted for. That is what makes every reader agree:
- the end of central directory record is the file's last 22 bytes with no comment, where miniz and zipfile both
  look first; a ZIP64 locator, when present, points at the ZIP64 record right before it (zipfile assumes that spot,
  miniz follows the pointer);
- the central directory ends where the end records begin and starts where the last entry's data ends, so there is
  no prepended data (zipfile would shift every offset by it, miniz would not) and no second directory to choose;
- every local header repeats its central record (name, flags, method) and entries neither overlap nor leave gaps;
- every entry has a plain file's attributes, and no name ending in "/" holds bytes (miniz reads none of an entry it
  takes for a directory);
- names are plain relative paths: printable ASCII, no backslash or colon, no empty, "." or ".." component.
Data descriptors (miniz writes them) must follow their entry and repeat its CRC and size.
"""
import os
import struct
import zlib
from dataclasses import dataclass

MAX_ENTRIES = 10_000
MAX_NAME = 512
CHUNK = 8 << 20  # CRC checks stream the file in pieces this big

_EOCD = struct.Struct("<4sHHHHIIH")                  # end of central directory, 22 bytes
_LOCATOR = struct.Struct("<4sIQI")                   # ZIP64 end of central directory locator, 20 bytes
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")              # ZIP64 end of central directory record, 56 bytes
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")      # central directory file header, 46 bytes
_LOCAL = struct.Struct("<4sHHHHHIIIHH")              # local file header, 30 bytes
_ZIP64_EXTRA, _MINIZ_PADDING = 0x0001, 0x4246         # the only extra fields the writers emit ("FB": alignment)
_ALLOWED_FLAGS = 0x0808                               # bit 3: data descriptor follows; bit 11: UTF-8 name
_U32, _U16 = 0xFFFFFFFF, 0xFFFF


class LayoutError(ValueError):
    """The archive's bytes are not laid out the way trtpack's writers lay them out; the message says where."""


@dataclass(frozen=True)
class Entry:
    name: str
    data_offset: int
    size: int
    crc: int


def _read(fd: int, offset: int, size: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise LayoutError(f"the file ends inside a zip structure at byte {offset}")
    return data


def _extras(raw: bytes, allowed: tuple, where: str) -> dict:
    found, pos = {}, 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise LayoutError(f"{where}: a cut extra field")
        ident, length = struct.unpack_from("<HH", raw, pos)
        if ident not in allowed or ident in found or pos + 4 + length > len(raw):
            raise LayoutError(f"{where}: extra field 0x{ident:04x} is not one trtpack's writers emit")
        found[ident] = raw[pos + 4:pos + 4 + length]
        pos += 4 + length
    return found


def _zip64_values(extra: bytes, wanted: list, where: str) -> list:
    """Replaces each 0xFFFFFFFF of `wanted` by the next 8-byte value of the ZIP64 extra field, in zip order."""
    need = sum(v == _U32 for v in wanted)
    if len(extra) != 8 * need:
        raise LayoutError(f"{where}: its ZIP64 field holds {len(extra)} bytes for {need} values")
    values = list(struct.unpack(f"<{need}Q", extra)) if need else []
    return [values.pop(0) if v == _U32 else v for v in wanted]


def _safe_name(raw: bytes) -> str:
    if not raw or len(raw) > MAX_NAME or any(c < 0x21 or c > 0x7E for c in raw):
        raise LayoutError(f"an entry name {raw[:80]!r} is not 1-{MAX_NAME} printable ASCII characters")
    name = raw.decode("ascii")
    parts = name[:-1].split("/") if name.endswith("/") else name.split("/")
    if "\\" in name or ":" in name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise LayoutError(f"the entry name {name!r} is not a plain relative path (absolute, '..', '.', empty "
                          "component, backslash or colon): a reader that extracts it could write outside its folder")
    return name


def _end_records(fd: int, size: int):
    """(entry count, central directory offset, central directory end) from the end records."""
    if size < _EOCD.size:
        raise LayoutError("the file is too short to be a zip archive")
    sig, disk, cd_disk, here, total, cd_size, cd_offset, comment = _EOCD.unpack(_read(fd, size - 22, 22))
    if sig != b"PK\x05\x06" or comment:
        raise LayoutError("the last 22 bytes are not an end of central directory record without a comment "
                          "(trailing data, or a comment that could hide a second directory)")
    end = size - 22
    locator = _read(fd, end - 20, 20) if end >= 20 else b""
    if not locator.startswith(b"PK\x06\x07"):
        if disk or cd_disk or here != total or _U32 in (cd_size, cd_offset) or total == _U16:
            raise LayoutError("the end of central directory record is inconsistent (multi-disk or ZIP64 markers "
                              "without a ZIP64 record)")
        return total, cd_offset, cd_size, end
    _, eocd64_disk, eocd64_offset, disks = _LOCATOR.unpack(locator)
    if eocd64_disk or disks != 1 or eocd64_offset != end - 20 - _EOCD64.size:
        raise LayoutError("the ZIP64 locator does not point at the ZIP64 record right before it")
    sig, record_size, _, _, disk64, cd_disk64, here64, total64, cd_size64, cd_offset64 = _EOCD64.unpack(
        _read(fd, eocd64_offset, _EOCD64.size))
    if sig != b"PK\x06\x06" or record_size != _EOCD64.size - 12 or disk64 or cd_disk64 or here64 != total64:
        raise LayoutError("the ZIP64 end of central directory record is malformed")
    for narrow, wide, sentinel in ((total, total64, _U16), (cd_size, cd_size64, _U32), (cd_offset, cd_offset64, _U32)):
        if narrow != sentinel and narrow != wide:
            raise LayoutError("the two end of central directory records disagree")
    return total64, cd_offset64, cd_size64, eocd64_offset


def read_layout(fd: int, size: int) -> list:
    """The entries of the zip archive open as `fd` (a regular file of `size` bytes), in central directory order.

    Raises LayoutError unless the layout is exactly what trtpack's writers produce (module docstring). Reads the end
    records, the central directory and each local header: work and memory linear in the number of entries, capped.
    """
    total, cd_offset, cd_size, cd_end = _end_records(fd, size)
    if total > MAX_ENTRIES:
        raise LayoutError(f"it declares {total} entries (at most {MAX_ENTRIES})")
    if cd_offset + cd_size != cd_end or cd_size > total * (_CENTRAL.size + MAX_NAME + 28):
        raise LayoutError("the central directory does not end where the end records begin (hidden or prepended data)")
    directory, pos, entries, names = _read(fd, cd_offset, cd_size), 0, [], set()
    for _ in range(total):
        if pos + _CENTRAL.size > len(directory):
            raise LayoutError("the central directory is shorter than its entry count")
        (sig, _, needs, flags, method, _, _, crc, csize, usize, name_len, extra_len, comment_len, disk, internal,
         external, offset) = _CENTRAL.unpack_from(directory, pos)
        if sig != b"PK\x01\x02" or flags & ~_ALLOWED_FLAGS or method != 0 or comment_len or disk:
            raise LayoutError(f"central record {len(entries)} is not a stored, unencrypted entry without a comment")
        _check_version_needed(needs, f"central record {len(entries)}")
        name_end = pos + _CENTRAL.size + name_len
        name = _safe_name(directory[pos + _CENTRAL.size:name_end])
        _check_attributes(internal, external, name)
        extra = _extras(directory[name_end:name_end + extra_len], (_ZIP64_EXTRA,), name)
        usize, csize, offset = _zip64_values(extra.get(_ZIP64_EXTRA, b""), [usize, csize, offset], name)
        if csize != usize:
            raise LayoutError(f"{name!r}: stored size {csize} differs from its size {usize}")
        if name.endswith("/") and usize:
            raise LayoutError(f"{name!r} is named as a directory but holds {usize} bytes, which miniz would not read")
        if name in names:
            raise LayoutError(f"the entry {name!r} appears twice (readers disagree on which copy counts)")
        names.add(name)
        entries.append((offset, name, flags, usize, crc))
        pos = name_end + extra_len
    if pos != len(directory):
        raise LayoutError("the central directory holds bytes after its last record")
    return _check_local_headers(fd, sorted(entries), cd_offset, [name for _, name, *_ in entries])


def _check_attributes(internal: int, external: int, name: str) -> None:
    """A plain file's attributes, as trtpack's writers set them: internal 0, no MS-DOS attribute bits, and a Unix
    mode that is none or a regular file's (torch's miniz writer: 0 and 0; Python's zipfile: 0o600 << 16, or the
    file's own mode). miniz takes an entry with the MS-DOS directory bit for a directory and reads none of its bytes
    (torch then parses memory it never filled), while zipfile and this reader read them: the readers would disagree."""
    file_type = (external >> 16) & 0o170000
    if internal or external & _U16 or file_type not in (0, 0o100000):
        raise LayoutError(f"{name!r} has attributes (internal 0x{internal:04x}, external 0x{external:08x}) that are "
                          "not a plain file's as trtpack's writers set them: a reader may take it for a directory or "
                          "a link")


def _check_version_needed(needs: int, where: str) -> None:
    """The zip version needed to extract: 0 (torch's writer), 2.0 or 4.5 (ZIP64) are what trtpack writes; a newer
    feature level is one some reader may not implement (Python's zipfile refuses above 6.3), so readers could disagree."""
    if needs > 45:
        raise LayoutError(f"{where} needs zip version {needs // 10}.{needs % 10} to extract; trtpack writes at most "
                          "4.5 (ZIP64)")


def _check_local_headers(fd: int, by_offset: list, cd_offset: int, order: list) -> list:
    expected, found = 0, {}
    for offset, name, flags, size, crc in by_offset:
        if offset != expected:
            raise LayoutError(f"{name!r} starts at byte {offset}, not where the previous entry ends ({expected}): "
                              "entries overlap, or bytes between them are unaccounted for")
        header = _read(fd, offset, _LOCAL.size)
        sig, needs, local_flags, method, _, _, local_crc, local_csize, local_usize, name_len, extra_len = \
            _LOCAL.unpack(header)
        _check_version_needed(needs, f"the local header of {name!r}")
        raw = _read(fd, offset + _LOCAL.size, name_len + extra_len)
        if sig != b"PK\x03\x04" or local_flags != flags or method != 0 or raw[:name_len] != name.encode():
            raise LayoutError(f"the local header of {name!r} does not repeat its central record")
        extra = _extras(raw[name_len:], (_ZIP64_EXTRA, _MINIZ_PADDING), name)
        if flags & 0x8:  # sizes and CRC follow the data; the header's copies are zero (or ZIP64 markers)
            if local_crc or {local_csize, local_usize} - {0, _U32}:
                raise LayoutError(f"the local header of {name!r} has a CRC or size although a descriptor follows")
        else:
            local = _zip64_values(extra.get(_ZIP64_EXTRA, b""), [local_usize, local_csize], name)
            if local_crc != crc or local != [size, size]:
                raise LayoutError(f"the local header of {name!r} disagrees with its central record on CRC or size")
        data_offset = offset + _LOCAL.size + name_len + extra_len
        expected = data_offset + size
        if flags & 0x8:
            expected += _descriptor_length(fd, expected, crc, size, name)
        if expected > cd_offset:
            raise LayoutError(f"{name!r} runs into the central directory")
        found[name] = Entry(name, data_offset, size, crc)
    if expected != cd_offset:
        raise LayoutError(f"{cd_offset - expected} bytes between the last entry and the central directory are "
                          "unaccounted for")
    return [found[name] for name in order]


def _descriptor_length(fd: int, offset: int, crc: int, size: int, name: str) -> int:
    raw = os.pread(fd, 24, offset)
    if raw[:16] == struct.pack("<4sIII", b"PK\x07\x08", crc, size & _U32, size & _U32) and size < _U32:
        return 16
    if raw == struct.pack("<4sIQQ", b"PK\x07\x08", crc, size, size):
        return 24
    raise LayoutError(f"the data descriptor after {name!r} does not repeat its CRC and size")


def check_crcs(fd: int, entries: list) -> None:
    """Streams every entry through CRC-32 (CHUNK bytes of memory at a time); LayoutError names the first mismatch."""
    for entry in entries:
        crc, pos, end = 0, entry.data_offset, entry.data_offset + entry.size
        while pos < end:
            chunk = _read(fd, pos, min(CHUNK, end - pos))
            crc = zlib.crc32(chunk, crc)
            pos += len(chunk)
        if crc != entry.crc:
            raise LayoutError(f"the entry {entry.name!r} fails its CRC-32 check (stored {entry.crc:08x}, computed "
                              f"{crc:08x}): its bytes changed after it was written")


def read_entry(fd: int, entry: Entry, limit: int) -> bytes:
    """An entry's bytes (at most `limit`), CRC-checked."""
    if entry.size > limit:
        raise LayoutError(f"{entry.name!r} is {entry.size} bytes (at most {limit} for this entry)")
    data = _read(fd, entry.data_offset, entry.size)
    if zlib.crc32(data) != entry.crc:
        raise LayoutError(f"the entry {entry.name!r} fails its CRC-32 check: its bytes changed after it was written")
    return data
