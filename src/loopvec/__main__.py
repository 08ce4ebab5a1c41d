import sys

from loopvec.cli import main

sys.exit(main())
