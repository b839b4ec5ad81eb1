"""`python -m pool` is `ebook-pool run`; `python -m pool COMMAND ...` is `ebook-pool COMMAND ...`."""

import sys

from pool_app.cli import main

sys.exit(main(sys.argv[1:] or ["run"]))
