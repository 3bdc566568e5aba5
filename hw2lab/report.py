"""`python -m hw2lab.report`, as README shows it: the command is hw2lab.tools.report."""

from hw2lab.tools.report import main

if __name__ == "__main__":
    main()
