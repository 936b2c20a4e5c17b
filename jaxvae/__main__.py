import sys

from jaxvae.cli import main

sys.exit(main(exiting=True))
