"""Array steps of the optical method, arrays in and arrays out, no files: clouds (:mod:`.masks`),
co-registration (:mod:`.register`), radiometric normalisation (:mod:`.normalize`), change metrics
(:mod:`.metrics`) and each building's evidence (:mod:`.evidence`)."""
