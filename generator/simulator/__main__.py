"""`python -m generator.simulator`: run the OpenAI simulator as its own process."""

import sys

from generator.simulator.cli import main

sys.exit(main())
