"""`python -m hw2lab.reproduce`, as README shows it: the command is hw2lab.tools.reproduce."""

import sys

from hw2lab.tools.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
