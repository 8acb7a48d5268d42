"""`python -m karma`: the same entry point as the `karma` console script."""

from karma.cli import main

main()
