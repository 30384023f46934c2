"""`python -m yuqing.cli`, the same as `yuqing`."""

from yuqing.cli import main

main()
