"""The `ordertrack` command line: the one leaf that wires the stages together."""
