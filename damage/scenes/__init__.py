"""Generated scenes for tests, examples and benchmarks, with their ground truth.

- :mod:`damage.scenes.synthetic`: simple before/after pairs with rubble over chosen
  footprints, and :func:`~damage.scenes.synthetic.write_pair` to write any scene as
  GeoTIFFs and footprints;
- :mod:`damage.scenes.town`: a realistic town (roofs, shadows, trees, roads) with every
  damage grade and the nuisances of real pairs (misregistration, haze, clouds, season);
- :mod:`damage.scenes.sarsim`: Sentinel-1-like radar stacks for the PWTT method.

Accuracy is decided on real imagery graded by people (``benchmarks/accuracy.py xbd``);
these scenes test invariants and code paths.
"""
