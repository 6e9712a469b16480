"""The verifiable double-random draw against the database, one module per reason to change.

- ``announce``: a firing announced, its secret kept apart and its commitment published;
- ``gather``: the draw's inputs read from the directory, and the dry-run preview;
- ``write``: the draw itself and its one write transaction (draw, inspections, assignments, outbox);
- ``stored``: the inputs as stored at draw time, and the ``DrawInputs`` rebuilt from them;
- ``fixed``: protocol v2 — the pool and its confidential classes fixed at the announcement, and
  the audited disclosures of those classes;
- ``export``: the public bundle, a flight draw sealed until its reveal;
- ``confirm`` and ``status``: a coordinator's /draw (preview, confirm) and /status, /pending, /verify;
- ``common``: the refusal (``DrawError``) and the raw SQL helpers they share.

Import from the module (``from services.draws.write import draw_plan``): nothing is re-exported here.
A recusal and its replacement are ``services.recusals``.
"""
