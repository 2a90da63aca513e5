"""``suishenma-issuer``: the command line, by topic."""

from issuer.cli.main import main, main_exit

__all__ = ["main", "main_exit"]
