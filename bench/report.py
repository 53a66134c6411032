"""Targets, PASS/MISS and the printed table."""
import math

# The compile stages every compile runs, shown in the diagnostics however cheap (a pass that costs nothing on a model
# still says so); the cache and verify stages only where they took time.
PIPELINE_STAGES = ("export", "decompose", "fold", "views", "partition", "onnx", "build", "refusals", "lower", "total")

# metric -> (target ratio, what the ratio compares)
TARGETS = {
    "save": (1.1, ".ep save time / torch.export.save of the plain model"),
    "load": (1.1, ".ep load time / torch.export.load(...).module() of the plain model"),
    "size": (1.02, ".ep file size / (plan bytes + PyTorch-side weights)"),
    "load_rss": (1.3, "peak RSS growth while loading the .ep (fresh process) / .ep file size"),
    "compile": (1.2, "trtpack.compile(fallback=False, cache=False) time / hand-run export + ONNX + parse + build"),
    "compile_fallback": (1.4, "trtpack.compile(fallback=True, cache=False) time / the same hand-run"),
    "cache_hit": (0.2, "trtpack.compile with warm program and engine caches / the cold compile that filled them"),
    "call_overhead": (1.05, "per-call time of a fallback=True program on CPU / torch.export.export(model).module()"),
    "pt2_load": (1.1, ".pt2 load time / aoti_load_package of the plain model's AOTInductor package"),
}


def verdicts(results: dict) -> list:
    """Rows: (label, metric, entry) for every measured metric, in a stable order."""
    rows = []
    for size in results["sizes"]:
        for metric in ("save", "load", "size", "load_rss", "compile", "compile_fallback", "cache_hit", "pt2_load"):
            if metric in size:
                rows.append((f"{size['weight_mb']:g} MB", metric, size[metric]))
    for model in results.get("models", []):
        for metric in ("compile", "compile_fallback", "cache_hit"):
            if metric in model:
                rows.append((model["name"], metric, model[metric]))
    if "call_overhead" in results:
        rows.append(("small", "call_overhead", results["call_overhead"]))
    for _, metric, entry in rows:
        limit = TARGETS[metric][0]
        entry["target"] = limit
        entry["pass"] = bool(math.isfinite(entry["ratio"]["median"]) and entry["ratio"]["median"] <= limit)
    return rows


def _value(metric: str, value) -> str:
    if isinstance(value, dict):
        value = value["median"]
    if metric in ("size", "load_rss"):
        return f"{value / 1e6:.1f} MB"
    if metric == "call_overhead":
        return f"{value * 1e3:.1f} ms"
    return f"{value:.3f} s"


def table(rows: list) -> str:
    header = ["model", "metric", "trtpack", "baseline", "ratio (median [min, max])", "target", "result"]
    lines = [header]
    for label, metric, entry in rows:
        ratio = entry["ratio"]
        lines.append([label, metric, _value(metric, entry["trtpack"]), _value(metric, entry["baseline"]),
                      f"{ratio['median']:.3f} [{ratio['min']:.3f}, {ratio['max']:.3f}]",
                      f"<= {entry['target']:g}", "PASS" if entry["pass"] else "MISS"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths)) + " |" for line in lines]
    text.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(text)


def legend() -> str:
    return "\n".join(f"- {metric}: {what} (target <= {limit:g})" for metric, (limit, what) in TARGETS.items())


def diagnostics(results: dict) -> str:
    """What the ratios above are made of: trtpack against a floor with the same byte count, and per-call times."""
    lines = []
    for size in results["sizes"]:
        label = f"{size['weight_mb']:g} MB"
        if "save" not in size:
            continue
        for metric in ("save", "load"):
            entry = size[metric]
            floor = entry["same_bytes_floor"]["median"]
            lines.append(f"- {label} {metric}: {entry['trtpack']['median']:.3f} s vs {floor:.3f} s for the plain "
                         f"program plus an unused buffer as large as the plans (same bytes): "
                         f"{entry['trtpack']['median'] / floor:.3f}x; torch.export alone on the same program: "
                         f"{entry['same_program_floor']['median']:.3f} s")
        lines.append(f"- {label} files: trtpack .ep {size['size']['trtpack'] / 1e6:.1f} MB, plans "
                     f"{size['size']['plan_bytes'] / 1e6:.1f} MB, weights {size['weight_bytes'] / 1e6:.1f} MB, plain "
                     f".ep {size['size']['floor_file'] / 1e6:.1f} MB; load peak RSS growth: trtpack "
                     f"{size['load_rss']['trtpack']['median'] / 1e6:.1f} MB, plain "
                     f"{size['load_rss']['floor_rss_bytes'] / 1e6:.1f} MB")
    for label, entry in [(f"{s['weight_mb']:g} MB", s) for s in results["sizes"]] + \
            [(m["name"], m) for m in results.get("models", [])]:
        for metric in ("compile", "compile_fallback", "cache_hit"):
            if metric in entry:
                stages = ", ".join(f"{k} {v:.3f} s" for k, v in entry[metric]["stages"].items()
                                   if v >= 0.005 or k in PIPELINE_STAGES)
                lines.append(f"- {label} {metric} stages (last run): {stages}")
                if "cold_stages" in entry[metric]:
                    stages = ", ".join(f"{k} {v:.2f} s" for k, v in entry[metric]["cold_stages"].items() if v >= 0.005)
                    lines.append(f"- {label} {metric} stages of the cold compile it is compared with: {stages}")
    if "call_overhead" in results:
        us = results["call_overhead"]["per_call_us"]
        lines.append(f"- per call: eager {us['eager']:.0f} us, plain torch.export module {us['exported_plain']:.0f} "
                     f"us, trtpack fallback program (resolved) {us['trtpack']:.0f} us, the same program's torch.cond "
                     f"as saved {us['torch_cond_program']:.0f} us, engine_usable alone "
                     f"{us['engine_usable_alone']:.0f} us")
    return "\n".join(lines)
