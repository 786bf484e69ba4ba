import sys

from .model import main

sys.exit(main())
