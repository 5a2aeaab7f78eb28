"""The wiring, and the only code that unpacks :class:`damage.Config`: plan the grid and windows
(:mod:`.plan`), fit the scene (:mod:`.scenefit`, stored by :mod:`.fitstore`), measure a window
(:mod:`.measure`), assemble the result (:mod:`.assemble`); :mod:`.pipeline` runs them for one scene,
:mod:`.batch` for a region (run folder :mod:`.runfolder`, provenance, :mod:`.rerun`); :mod:`.pwtt`
assesses radar stacks."""
