"""Image collections: the `Collection` record and the loaders that make it."""
