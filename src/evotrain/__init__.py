"""evotrain: autonomous post-training as an auditable research loop.

Data flows one way: substrate → sandbox → trial → manifest → evidence → policy.
"""

__version__ = "0.1.0"
