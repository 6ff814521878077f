"""The `xlmr` command line: thin modules that parse, call the core, render."""
