"""The only code that opens files or URLs: rasters and epochs (:mod:`.sources`), which source pixels
hold data (:mod:`.nodata`), warping onto a grid window (:mod:`.warp`), labels (:mod:`.labels`) and the
output formats with atomic writes (:mod:`.writers`)."""
