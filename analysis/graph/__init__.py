"""Attention as a graph: sparsification rules, metrics, the C kernels and their fallback, paths, the graph across layers, layouts, GEXF/GraphML export."""
