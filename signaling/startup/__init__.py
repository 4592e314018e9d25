"""Turning flags, SFU_* variables and a TOML file into settings, and starting the server.

flags and settings import no sfu module, so the --workers front loads none.
"""
