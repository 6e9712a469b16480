"""The ground floor: what every layer above stands on and nothing of ours lies beneath.

Database access (``db``), time (``clock``), settings, logging, template rendering, the channel
protocol and the callback-data codec. Imports only ``domain`` (pure rules) and third-party
libraries; see docs/architecture.md.
"""
