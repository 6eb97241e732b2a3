import sys

from bench.onsale.report import main

sys.exit(main())
