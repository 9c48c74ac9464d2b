"""Pieces of the training command (:mod:`cmrseg.train`): data split, in-memory slices, loop and state."""
