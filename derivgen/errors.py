"""The one exception type the command line turns into a one-line message and exit code 2."""


class DerivgenError(ValueError):
    """Bad user input (spec, formula, names, files): the message is one line, shown as is."""
