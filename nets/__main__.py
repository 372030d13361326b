"""`python -m nets ...`: see nets/cli.py."""
import sys

from nets.cli import main

sys.exit(main())
