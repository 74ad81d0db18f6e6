"""The sweep report's internals: reading job folders back, tables, plots and the paper's reference numbers."""
