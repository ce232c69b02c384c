"""A corpus of bad input files, generated (not committed): see :mod:`tests.bad_inputs.corpus`."""
