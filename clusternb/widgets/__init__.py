"""Live ipywidgets panels. Public entry points: ``clusternb.panel()`` and friends (see :mod:`.panel`).

Modules: ``charts`` (pure: frames -> plotly trace dicts), ``views`` (pure: frames -> HTML), ``sections`` (one
widget per section, sends only on change), ``poller`` (one thread per kernel), ``panel`` (composition, controls).
"""
