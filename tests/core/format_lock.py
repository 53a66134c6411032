"""The format lock: tests/core/format_lock.json pins the record's field table and schema to a format_version.

The field table is core/record_fields.h (trtpack.record.FIELDS and friends); the schema is
docs/engine_meta.schema.json. tests/core/test_schema.py fails while either differs from the lock, naming the
version bump the change needs (docs/FORMAT.md §5). After bumping kFormatMajor/kFormatMinor in
core/engine_record.h (for a major bump also an upgrader in core/upgraders.cc and a fixture), regenerate it with

    ./bazelw run //tests/core:format_lock

which refuses to write while the version bump is missing.
"""
import hashlib
import json
import os
import sys

from trtpack import record

LOCK = os.path.join("tests", "core", "format_lock.json")
SCHEMA = os.path.join("docs", "engine_meta.schema.json")
COMMAND = "./bazelw run //tests/core:format_lock"


def fields() -> dict:
    """The field tables without their docs (a doc edit is no format change), in a stable JSON form."""
    tables = {"meta": record.FIELDS, "tensor": record.TENSOR_FIELDS, "symbol_range": record.SYMBOL_RANGE_FIELDS}
    return {table: [[f.name, f.kind, f.required, f.since] for f in rows] for table, rows in tables.items()}


def current(root: str) -> dict:
    with open(os.path.join(root, SCHEMA), "rb") as f:
        schema_sha256 = hashlib.sha256(f.read()).hexdigest()
    return {"format_version": list(record.FORMAT_VERSION), "fields": fields(), "schema_sha256": schema_sha256}


def read(root: str) -> dict:
    with open(os.path.join(root, LOCK), encoding="utf-8") as f:
        return json.load(f)


def needed_bump(old: dict, new: dict):
    """("major" | "minor" | None, [reasons]) for a change of the field tables from `old` to `new`.

    Only a new optional top-level key is a minor change; anything else that a reader of the old version
    would reject or misread (removed, renamed, retyped or newly required keys, any nested change) is major.
    """
    level, reasons = None, []
    for table in sorted(set(old) | set(new)):
        before = {name: rest for name, *rest in old.get(table, [])}
        after = {name: rest for name, *rest in new.get(table, [])}
        for name in sorted(set(before) | set(after)):
            if before.get(name) == after.get(name):
                continue
            where = name if table == "meta" else f"{table}.{name}"
            if name not in after:
                reasons.append(f"{where} removed")
            elif name not in before:
                required = after[name][1]
                if table == "meta" and not required:
                    reasons.append(f"{where} added as optional")
                    level = level or "minor"
                    continue
                reasons.append(f"{where} added" + (" as required" if required else " to a nested object"))
            else:
                reasons.append(f"{where} changed from (kind, required, since) {before[name]} to {after[name]}")
            level = "major"
    return level, reasons


def is_bumped(old_version, new_version, level) -> bool:
    old_version, new_version = tuple(old_version), tuple(new_version)
    if level == "major":
        return new_version[0] > old_version[0]
    return level is None or new_version > old_version


def problem(lock: dict, now: dict):
    """None when the lock matches; otherwise what changed and what to do."""
    if lock == now:
        return None
    level, reasons = needed_bump(lock.get("fields", {}), now["fields"])
    if lock.get("schema_sha256") != now["schema_sha256"]:
        reasons.append(f"{SCHEMA} changed")
    if lock.get("format_version") != now["format_version"]:
        reasons.append(f"format_version changed from {lock.get('format_version')} to {now['format_version']}")
    said = f"The record format differs from {LOCK} (format {lock.get('format_version')}): " + "; ".join(reasons) + "."
    if not is_bumped(lock.get("format_version", [0, 0]), now["format_version"], level):
        return (f"{said} That needs a {level} bump of format_version (docs/FORMAT.md §5, 'Versioning'): set "
                "kFormatMajor/kFormatMinor in core/engine_record.h" +
                (", add an upgrader to core/upgraders.cc and a fixture to tests/fixtures/records/" if level == "major"
                 else "") + f", then regenerate the lock with `{COMMAND}`.")
    if level:
        return f"{said} format_version {now['format_version']} is bump enough: regenerate the lock with `{COMMAND}`."
    return (f"{said} Decide whether this is a format change (docs/FORMAT.md §5, 'Versioning': a removed, renamed or "
            "newly required field is a major bump, a new optional top-level field a minor one), then regenerate the "
            f"lock with `{COMMAND}`.")


def dumps(lock: dict) -> str:
    """The lock as JSON, one field per line so that a diff shows what changed."""
    tables = ",\n".join(f'    "{table}": [\n' + ",\n".join("      " + json.dumps(row) for row in rows) + "\n    ]"
                        for table, rows in lock["fields"].items())
    return (f'{{\n  "format_version": {json.dumps(lock["format_version"])},\n  "fields": {{\n{tables}\n  }},\n'
            f'  "schema_sha256": {json.dumps(lock["schema_sha256"])}\n}}\n')


def main() -> int:
    root = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
    now = current(root)
    lock = read(root)
    level, reasons = needed_bump(lock.get("fields", {}), now["fields"])
    if not is_bumped(lock["format_version"], now["format_version"], level):
        print(problem(lock, now), file=sys.stderr)
        return 1
    with open(os.path.join(root, LOCK), "w", encoding="utf-8") as f:
        f.write(dumps(now))
    print(f"wrote {LOCK} for format {now['format_version']}" + (f" ({'; '.join(reasons)})" if reasons else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
