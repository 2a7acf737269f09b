"""Built-in bridges, one module per method; `sde.py` holds the SDE base classes (and their samplers) that
irsde, goub and rdbm build on."""
