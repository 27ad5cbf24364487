"""`python -m trainer`: build, import, fine-tune and export models."""

import signal
import sys

from trainer.cli import main


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # a terminate (the app's Cancel) unwinds like Ctrl+C: staged packages are removed


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupted)
    sys.exit(main())
