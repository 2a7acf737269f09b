"""Built-in dataset adapters (`--data NAME:PATH`), one module per benchmark layout."""
