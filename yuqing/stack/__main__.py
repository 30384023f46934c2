"""`python -m yuqing.stack`: what `./dev serve` runs."""

from yuqing.stack.cli import cli

if __name__ == "__main__":
    cli()
