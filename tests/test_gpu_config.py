"""trainer=gpu, the default channels-last callback and the GPU loader flags: all a CPU supports, run on the CPU."""

from __future__ import annotations

import torch

from garbage_lit.callbacks.channels_last import ChannelsLast
from garbage_lit.records.folder import COMPLETED, read_metrics
from garbage_lit.train import train

from helpers import TEST_ACC


def test_gpu_config_runs_on_cpu_with_bf16_channels_last_pinned_persistent(make_cfg, folder_dataset, tmp_path,
                                                                           monkeypatch):
    seen = {}
    original_setup = ChannelsLast.setup

    def spy(self, trainer, pl_module, stage):
        original_setup(self, trainer, pl_module, stage)
        seen.update(trainer=trainer, module=pl_module)

    monkeypatch.setattr(ChannelsLast, "setup", spy)
    out = tmp_path / "run"
    cfg = make_cfg("trainer=gpu", "trainer.accelerator=cpu", "trainer.precision=bf16-mixed",
                   "trainer.benchmark=false", "debug=fast_dev_run", "data=folder", f"data.root={folder_dataset}",
                   "data.num_workers=1", "data.pin_memory=true", "data.persistent_workers=true",
                   "cache.features=false",  # the image loaders' flags (cached features sit in memory on the device)
                   output_dir=out)
    assert cfg.data.pin_memory and cfg.data.persistent_workers and cfg.trainer.precision == "bf16-mixed"

    result = train(cfg)

    assert read_metrics(out)["status"] == COMPLETED
    assert 0.0 <= result[TEST_ACC] <= 1.0
    trainer, module = seen["trainer"], seen["module"]
    assert trainer.precision == "bf16-mixed"
    conv = module.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    loader = trainer.datamodule.train_dataloader()
    assert loader.pin_memory and loader.persistent_workers and loader.num_workers == 1
