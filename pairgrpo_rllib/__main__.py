"""``python -m pairgrpo_rllib`` is the ``pairgrpo`` command."""

import sys

from pairgrpo_rllib.app.cli import main

sys.exit(main())
