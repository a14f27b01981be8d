"""The Typer command-line layer: parse options, call the core, render with Rich. Nothing imports it."""
