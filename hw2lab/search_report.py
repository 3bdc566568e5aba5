"""`python -m hw2lab.search_report`, as README shows it: the command is hw2lab.tools.search_report."""

import sys

from hw2lab.tools.search_report import main

if __name__ == "__main__":
    sys.exit(main())
