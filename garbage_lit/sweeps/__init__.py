"""Sweeps of many jobs: reading their folders back, tables, plots, the paper's reference numbers, GPUs per job."""
