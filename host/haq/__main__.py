import sys

from fixar.haq.cli import main

sys.exit(main())
