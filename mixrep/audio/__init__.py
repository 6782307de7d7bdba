"""Audio I/O, the mel front end, handcrafted mix features and style augmentations."""
