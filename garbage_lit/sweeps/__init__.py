"""The sweep report's internals: reading job folders back, tables, plots, the paper's numbers and claims."""
