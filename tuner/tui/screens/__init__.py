"""Modal screens: help, export, load a profile, fault rates."""
