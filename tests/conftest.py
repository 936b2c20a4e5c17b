import os
import sys

# Tests import the closed-form oracles as a plain module.
sys.path.insert(0, os.path.dirname(__file__))
