"""Prints `N passed, N failed, N skipped` for one `bazel test` run, from its build event file, plus any further
JUnit files given after it (CI's steps outside Bazel: tests/user_env).

Every test target that ran (or was cached) names its test.xml there; a target that failed to
build, or a test that died before writing XML, counts as one failure.
"""
import json
import sys
import xml.etree.ElementTree as ET
from urllib.parse import unquote, urlparse


def count_xml(path, reasons=None):
    """(passed, failed, skipped) of one JUnit file; each skip's reason is counted into `reasons` if given."""
    root = ET.parse(path).getroot()
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" in kinds:
            skipped += 1
            if reasons is not None:
                reason = (case.find("skipped").get("message") or "no reason given").splitlines()[0][:160]
                reasons[reason] = reasons.get(reason, 0) + 1
        else:
            passed += 1
    return passed, failed, skipped


def main(bep_path, extra_xml=()):
    results = {}  # label -> list of test.xml paths (one per attempt/shard; last attempt wins)
    broken = set()
    for line in open(bep_path):
        event = json.loads(line)
        eid = event.get("id", {})
        if "testResult" in eid:
            label = eid["testResult"]["label"]
            xmls = [unquote(urlparse(f["uri"]).path) for f in event.get("testResult", {}).get("testActionOutput", [])
                    if f.get("name") == "test.xml"]
            results.setdefault(label, {})[(eid["testResult"].get("shard", 0))] = xmls
        elif "targetCompleted" in eid and not event.get("completed", {}).get("success", True):
            broken.add(eid["targetCompleted"]["label"])
        elif "targetCompleted" in eid and event.get("aborted"):
            broken.add(eid["targetCompleted"]["label"])
    passed = failed = skipped = 0
    reasons = {}
    for label, shards in results.items():
        for xmls in shards.values():
            if not xmls:
                failed += 1
                continue
            p, f, s = count_xml(xmls[-1], reasons)
            if p + f + s == 0:
                failed += 1  # a test target that ran no test case is a failure, not a pass
            passed, failed, skipped = passed + p, failed + f, skipped + s
    failed += len(broken - set(results))
    for path in extra_xml:
        try:
            p, f, s = count_xml(path, reasons)
        except (OSError, ET.ParseError):
            p, f, s = 0, 1, 0
        if p + f + s == 0:
            f = 1
        passed, failed, skipped = passed + p, failed + f, skipped + s
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        print(f"skipped {count}: {reason}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
