"""`python -m xlmr_tools …`: the `xlmr` command, where the console script is not on PATH."""

from xlmr_tools.cli.app import main

if __name__ == "__main__":
    main()
