"""``latmap``: the command line. It only parses arguments and calls the library.

One module per command; ``options`` declares the options the mapping commands share, once,
and hands each command a :class:`~mapper.cli.options.MapOptions`, which becomes the
:class:`~mapper.app.request.MapRequest` that :func:`mapper.app.job.run_map` maps. Exit codes
are decided in :func:`~mapper.cli.entry.main` alone: 0 ok, 1 an objective is broken, 2 a
usage, config or source error. Errors are printed as one line each, never as a traceback
(``--debug`` shows the traceback of an unexpected error).

Importing this package loads no command's heavy dependencies: each reaches the library
through the lazy packages (``mapper.app``, ``mapper.render`` ...), so ``latmap --help`` stays
as cheap as click itself.
"""

from mapper.cli.entry import cli, main
from mapper.cli.output import EXIT_ERROR, EXIT_OBJECTIVE_BROKEN, EXIT_OK, exit_code

__all__ = ["EXIT_ERROR", "EXIT_OBJECTIVE_BROKEN", "EXIT_OK", "cli", "exit_code", "main"]
