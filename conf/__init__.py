"""Hydra configs, shipped inside the package as garbage_lit.conf so installed copies find them."""
