"""uvrsep: run Ultimate Vocal Remover v5 VR-architecture separation models."""

__version__ = "0.1.0"
