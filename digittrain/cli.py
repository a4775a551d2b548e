"""The `digittrain` command (the trainer itself arrives with its own issue)."""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Train and evaluate a NumPy MLP on digitprep's one-hot CSVs."""
