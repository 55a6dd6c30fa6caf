"""rxlit: do robust models give robust explanations for free, and at what cost in faithfulness?"""

__version__ = "0.1.0"
