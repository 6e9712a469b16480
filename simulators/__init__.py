"""Loopback stand-ins for the services no machine here can reach (Telegram Bot API, SMS gateways)."""
