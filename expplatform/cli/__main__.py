"""`python -m expplatform.cli`: the same as the `expplatform` command."""

import sys

from expplatform.cli import main

sys.exit(main())
