"""The ``nexort`` command-line tool (one room): ``app`` (parser, dispatch, errors), ``common``
(command registry, the Report every command returns, NAME=VALUE parsing), ``options`` (the shared
option groups), ``output`` (the output convention and the one error renderer), ``progress``
(the one progress reporter), and one module per command: ``compile``, ``check``, ``exec``,
``backprop``, ``total``, ``abcd``, ``lower``, ``limit_scalars``, ``train``, ``unroll``,
``coordcheck``, ``limit``, ``converge``."""

from compiler.cli.app import main

__all__ = ["main"]
