"""Training of the CT teacher and the X-ray student on generated phantoms (CPU-sized)."""
