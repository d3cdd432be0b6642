"""Visualisation: mask overlays (``lsms.viz.overlay``) and plots; matplotlib is imported lazily."""
