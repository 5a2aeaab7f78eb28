"""Array steps of the radar method: speckle filtering, log ratios and the pixel-wise t-test (:mod:`.statistics`)."""
