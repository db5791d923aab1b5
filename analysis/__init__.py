"""Attention Atlas analysis core: models, extraction, views, graphs, export. No Qt here.

For notebooks and scripts: ``import analysis as atlas`` then ``atlas.analyse``,
``atlas.view``, ``atlas.build_graph``, ``atlas.flow``, ``atlas.export`` (see :mod:`analysis.api`).
"""

_API = ("analyse", "view", "build_graph", "flow", "with_contributions", "export")


def __getattr__(name: str):
    if name in _API:  # loaded on first use, so `import analysis` stays light
        from analysis import api

        return getattr(api, name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
