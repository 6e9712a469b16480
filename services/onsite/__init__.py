"""On site, one module per use case: ``checkin``, ``photos``, ``findings`` (the findings
conversation), ``corrections``; ``shared`` holds the refusal, the answers and which inspection is
under way, ``results`` a result and its team as the findings and corrections read and write them.

Each use case is one transaction (the caller's when it passes ``conn``, else its own); the
clock's ``now`` is passed in. Every state change is appended to the audit chain in that
transaction. Someone else's inspection, result or correction is reported exactly like a missing one.
"""
