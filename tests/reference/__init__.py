"""Transcriptions of official code (plain Python / numpy, independent of the library), one module per method:
what tests/bridges/ compares the plugins against. Modules, not tests."""
