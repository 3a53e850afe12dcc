"""Pack: tokenize the training split and lay it out in one pre-shuffled global order."""
