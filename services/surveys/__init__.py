"""Integrity surveys as a working feature, on the pure core in ``domain.surveys``, one module per
use case: ``enter`` (sampling and sending), ``replies`` (texts, poll answers, opt-outs),
``receipts`` (SMS delivery receipts), ``sweep`` (what time does), ``integrity`` (the scores);
``shared`` holds the survey row, its messages and applying a step.

Each use case is one transaction (the caller's, when it passes ``connection``): the survey row
changes, its messages are outbox rows, its alerts are alert rows, and they commit together.
"""
