"""``python -m suishenma``: the same as the ``suishenma`` command."""

from .cli import main_exit

main_exit()
