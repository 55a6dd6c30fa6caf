"""The reproduction studies; importing this package registers them in ``rxlit.analysis.study.STUDIES``."""

from rxlit.analysis.studies import free_lunch

__all__ = ["free_lunch"]
