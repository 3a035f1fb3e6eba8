"""The Textual face of tuner: the only package that imports Textual or plotext."""
