"""Open-loop load: serving under traffic (see :mod:`.step` for what a step measures and how it judges).

==============  =============================================================================
``schedule``    arrival schedules: constant, Poisson, a replayed trace; request sizes
``step``        one step through ``Runtime.submit``: latency from the intended send time, verdict
``search``      the highest sustainable rate (geometric steps up, then bisection, within a budget)
``sweep``       candidates (configurations × batching settings) from a closed-loop sweep, searched
``messages``    what a running sweep reports (light: the TUI's relay imports it)
``report``      the profile's ``online:`` section, the JSON, the table, the lines
==============  =============================================================================

The capacity plan built on it (the USL fit) lives in :mod:`tuner.plan`, outside the benchmark, so
``tuner plan`` never imports the load generator.
"""
