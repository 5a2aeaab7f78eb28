"""Tables over an assessment: scores against reference labels (:mod:`.evaluate`), learning from an
analyst's labels and the damaged count (:mod:`.learn`, :mod:`.analyst`), facilities (:mod:`.facilities`)
and the ``--where`` filter (:mod:`.query`)."""
