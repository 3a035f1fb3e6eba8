"""The benchmark: measure trials through the engine, search the space, recommend, export a profile.

``types`` is the vocabulary shared with the TUI; ``measure`` runs one trial; ``search`` holds the
space and the strategies; ``session`` runs a sweep; ``recommend`` turns results into a profile;
``report`` renders them for people (tables, charts, Markdown). Import the submodules you need:
this package imports nothing heavy itself.
"""

from __future__ import annotations
