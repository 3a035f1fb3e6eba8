"""One module per ``tuner`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``.

``add_arguments`` must import nothing heavy: every command's parser is built on each call.
"""
