"""Backbones, attention modules, heads and the Siamese models.

Each module registers its builders with registry.register_model; nothing needs
to be listed here.
"""
