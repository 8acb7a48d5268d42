"""Test doubles that are real programs: the loopback model server (`model_server`)."""
