"""``python -m ratecast.cli``."""

from . import main

main()
