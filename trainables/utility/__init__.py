"""Utility of a model on held-out data: weighted kNN (:mod:`.knn`), a linear probe (:mod:`.linear_probe`), and
classifier accuracy per split (:mod:`.measure`)."""
