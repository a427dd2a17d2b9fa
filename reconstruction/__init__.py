"""Framework-free science core: imaging I/O, knee phantoms, DRR projection,
CT segmentation, networks, training and meshing. Never imports Django."""
