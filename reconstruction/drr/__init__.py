"""Digitally reconstructed radiographs: geometry, projector, noise, CLI."""
