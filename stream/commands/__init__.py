"""Subcommands of `aiops`, one module each."""
