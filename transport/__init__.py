"""Cove's link layer: frames, Noise links over TCP, discovery (DESIGN §4-5). Not built yet."""
