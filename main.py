"""batmon entry point: ``python3 main.py [run|scan|decode] ...`` (see ``--help``)."""

import sys

from bmslib.cli import main

if __name__ == "__main__":
    sys.exit(main())
