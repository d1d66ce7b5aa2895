"""CPU benchmarks of the pipeline: scripts that print tables and write JSON, never tests.

    python -m srcore.bench.train --params params.yaml --out metrics/bench_train.json [--quick]   (make bench-train)
    python -m srcore.bench.infer --out metrics/bench_infer.json [--quick]                        (make bench-infer)
    python -m srcore.bench.data --params params.yaml --train data/prepared/train.h5 ...          (make bench-data)

`common` holds what they share: the modes (precision, memory format, compile, allocator policy), interleaved
timing, FLOP counting, peak memory and tables. The training benchmark drives the recipes' own step
(srcore.recipes), so what it times is what the pipeline runs. Developer tools: not part of the wheel.
"""
