"""``python -m styleforge`` runs the CLI (same as the ``styleforge`` script)."""

from styleforge.launch import run

run()
