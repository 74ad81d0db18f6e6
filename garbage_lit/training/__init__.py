"""How a model is trained, beyond the model itself: the optimizer and its parameter groups, learning-rate schedules,
batch-level augmentation, and checkpoints that a kill cannot corrupt."""
