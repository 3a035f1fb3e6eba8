"""Open-loop load: serving under traffic (see :mod:`.step` for what a step measures and how it judges).

==============  =============================================================================
``schedule``    arrival schedules: constant, Poisson, a replayed trace; request sizes
``step``        one step through ``Runtime.submit``: latency from the intended send time, verdict
``search``      the highest sustainable rate (geometric steps up, then bisection, within a budget)
``sweep``       candidates (configurations × batching settings) from a closed-loop sweep, searched
==============  =============================================================================
"""
