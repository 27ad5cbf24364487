"""`python -m trainer`: build, import, fine-tune and export models."""

import sys

from trainer.cli import main

if __name__ == "__main__":
    sys.exit(main())
