"""Benchmark code on tiny shapes, one repeat: keeps `make bench-*` from rotting. No speed is asserted here."""
import sys
from pathlib import Path

import pytest
import torch

from srcore import memory
from srcore.bench.common import MODES, format_table, peak_memory_mb
from srcore.bench.bounded import repeat_items, run_capped
from srcore.bench.data import LAYOUTS, bench_layouts, bench_loading, bench_prepare
from srcore.bench.infer import InferConfig, bench_upscale
from srcore.bench.micro import alloc_micro, prelu_micro
from srcore.bench import peers
from srcore.bench.train import Config, bench_config
from srcore.config import load_params
from srcore.data import TrainingImages, open_training_images
from srcore.imagefile import check_image_file
from srcore.patches import write_images

ROOT = Path(__file__).resolve().parents[1]
T91 = ROOT / "data" / "raw" / "train" / "T91"
PARAMS = load_params(ROOT / "params.yaml")
TINY = dict(num_feat=8, num_block=1)
FAST_MODES = [MODES["fp32"], MODES["bf16+cl+keep"]]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny ops on a shared machine: a second intra-op thread only waits for a busy core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    memory.keep_freed_memory(False)


def test_train_bench_rows_for_pixel_and_gan_steps():
    for config in (Config("edsr", TINY, batch=2, lr_size=8), Config("srresnet", TINY, batch=2, lr_size=8, gan=True)):
        rows = bench_config("tiny", config, FAST_MODES, repeats=1, params=PARAMS)
        assert [r["mode"] for r in rows] == ["fp32", "bf16+cl+keep"] and rows[0]["speedup"] == 1.0
        assert all(r["flops_per_step"] > 0 and r["steps_per_s"] > 0 and r["peak_mem_mb"] >= 0 for r in rows)
    assert "tiny" in format_table(rows, [("config", "config"), ("mode", "mode"), ("nothing", "missing")])


def test_microbenchmarks_and_memory_policy_run():
    assert {r["op"] for r in prelu_micro((2, 4, 5, 5), repeats=1)} >= {"prelu aten fwd+bwd", "prelu reference fwd+bwd"}
    assert len(alloc_micro((2, 4, 8, 8), repeats=1)) == 3
    assert peak_memory_mb(lambda: torch.ones(64, 2**20, dtype=torch.uint8)) > 32  # a 64 MB tensor, touched


def test_loading_and_layout_benchmarks_run(tmp_path: Path):
    out = tmp_path / "train.h5"
    write_images(sorted(T91.glob("*.png"))[:2], out, scale=4, seed=0)
    rows = bench_loading(out, steps=1, repeats=1, params=PARAMS, workers=(1,), config=Config("edsr", TINY, batch=2, lr_size=8),
                         mode=MODES["fp32"])
    assert [r["source"] for r in rows] == ["in-memory", "lazy, 1 worker(s)", "training only (no data)"]
    assert rows[0]["patches_per_s_alone"] > 0 and rows[-1]["steps_per_s_training"] > 0
    rows = bench_layouts(sorted((ROOT / "data" / "raw" / "train" / "BSDS200").glob("*.jpg"))[:2], batches=1, repeats=1)
    assert [r["layout"] for r in rows] == [name for name, _, _ in LAYOUTS]
    assert rows[0]["hr_mpixels"] == rows[1]["hr_mpixels"] < rows[-1]["hr_mpixels"]  # sub-images overlap
    assert all(r["crops_per_s"] > 0 and r["file_mb"] > 0 for r in rows)


def test_prepare_and_infer_benchmarks_run(tmp_path: Path):
    rows = bench_prepare(sorted(T91.glob("*.png"))[:2], repeats=1)
    assert [r["workers"] for r in rows] == [1, 2] and all(r["same_bytes"] for r in rows)
    config = InferConfig("edsr", TINY, lr_size=12, tile=8, overlap=2)
    rows = bench_upscale("tiny", config, FAST_MODES, repeats=1)
    assert all(r["mp_per_s"] > 0 and r["out_mp"] == round(48 * 48 / 1e6, 3) for r in rows)


def test_the_bounded_memory_benchmark_repeats_images_into_a_valid_file_and_sees_a_child_s_memory(tmp_path: Path):
    one, big = tmp_path / "one.h5", tmp_path / "big.h5"
    write_images(sorted(T91.glob("*.png"))[:2], one, scale=4, seed=0)
    assert repeat_items(one, big, copies=3) == big.stat().st_size
    small, large = check_image_file(one, 4), check_image_file(big, 4)
    assert large.sizes.tolist() == small.sizes.tolist() * 3 and large.nbytes() == 3 * small.nbytes()
    data = open_training_images(big, 4, 32, seed=0, source="memory", workers=0)
    assert large.digest == TrainingImages.in_memory(data.images.hr, data.images.lq, 4, 32, 0).digest
    # the sampler finds the child's memory: a child that touches 200 MB under a cap it fits in
    result, peak, _ = run_capped([sys.executable, "-c", "import time; x = bytearray(200 * 2**20); time.sleep(0.3); "
                                  "print('{}')"], 1 << 30, interval=0.02)
    assert result == {} and peak > 200


def test_peer_benchmark_registers_srcore_networks_for_basicsr_and_says_what_to_install(monkeypatch):
    """BasicSR is not a dependency: its options name srcore's networks, and without it the script says what to
    install instead of failing on an import."""
    class Registry(dict):
        def _do_register(self, name, fn):  # BasicSR's Registry method
            self[name] = fn

    registry = Registry()
    peers.register_srcore_networks(registry)
    options = peers.basicsr_options("esrgan", "rrdb-32x6")
    g = registry[options["network_g"].pop("type")](**options["network_g"])
    d = registry[options["network_d"].pop("type")](**options["network_d"])
    assert (g.name, g.arch_args["num_block"], d.name, d.arch_args["num_feat"]) == ("rrdb", 6, "vgg", 64)
    assert options["model_type"] == "ESRGANModel" and "network_d" not in peers.basicsr_options("pixel", "rrdb-32x6")
    monkeypatch.setitem(sys.modules, "basicsr", None)  # an import of basicsr now raises ImportError
    with pytest.raises(SystemExit, match="pip install basicsr==1.4.2"):
        peers.import_basicsr()
