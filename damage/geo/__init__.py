"""Values passed between steps: grids and rasters with their georeferencing, metres per CRS unit,
per-footprint (zonal) statistics and changed-area polygons. Imports nothing else of damage but errors."""
