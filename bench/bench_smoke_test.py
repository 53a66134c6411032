"""The benchmark runs end to end on a ~1 MB MLP and tiny ResNet-50-like / BERT-like models, one repetition, and
reports every metric with a finite ratio."""
import json
import math

from bench import all as bench_all
from bench import models, report


def test_every_metric_has_a_finite_ratio(tmp_path):
    results = bench_all.run(sizes=[1.0], reps=1, targets=["sm86"], pt2_sizes=[1.0], call_iterations=20,
                            workdir=str(tmp_path), compile_models=models.compile_models(tiny=True))
    results = json.loads(json.dumps(results))  # what --json writes
    measured = {row["metric"] for row in results["rows"]}
    assert measured == set(report.TARGETS)
    for row in results["rows"]:
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
        assert isinstance(row["pass"], bool)
    size = results["sizes"][0]
    assert size["regions"] == 1
    assert size["size"]["plan_bytes"] > 0.9 * size["weight_bytes"]  # the plan carries the weights
    assert list(tmp_path.iterdir()) == []  # artifacts are cleaned up
    for model in results["models"]:
        assert model["regions"] >= 1 and model["cache_hit"]["hits"] == model["cache_hit"]["regions"]


def test_only_the_requested_metrics_are_measured(tmp_path):
    results = bench_all.run(sizes=[1.0], reps=1, targets=["sm86"], pt2_sizes=[], call_iterations=20,
                            workdir=str(tmp_path), compile_models=models.compile_models(tiny=True),
                            wanted=["cache_hit"])
    assert {row["metric"] for row in results["rows"]} == {"cache_hit"}
    assert [row["model"] for row in results["rows"]] == ["1 MB"] + [m["name"] for m in results["models"]]
    for row in results["rows"]:
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0, row
    assert results["sizes"][0]["cache_hit"]["program_cache"] == "hit"
    assert report.diagnostics(results)  # prints what was measured, nothing it was not
