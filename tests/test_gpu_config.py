"""trainer=gpu: everything it sets that a CPU supports, exercised on the CPU."""

from __future__ import annotations

import json

import torch

from garbage_lit.callbacks.channels_last import ChannelsLast
from garbage_lit.train import train


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
                   "trainer.benchmark=false", "+trainer.fast_dev_run=true", "data=folder",
                   f"data.root={folder_dataset}", "data.num_workers=1", output_dir=out)
    assert cfg.data.pin_memory and cfg.data.persistent_workers and cfg.trainer.precision == "bf16-mixed"

    result = train(cfg)

    assert json.loads((out / "metrics.json").read_text())["status"] == "completed"
    assert 0.0 <= result["acc"] <= 1.0
    trainer, module = seen["trainer"], seen["module"]
    assert trainer.precision == "bf16-mixed"
    conv = module.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    loader = trainer.datamodule.train_dataloader()
    assert loader.pin_memory and loader.persistent_workers and loader.num_workers == 1
