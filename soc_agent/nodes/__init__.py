"""One module per graph node; each node is ``verb_object(state, runtime)``."""
