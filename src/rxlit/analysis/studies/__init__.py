"""The reproduction studies; importing this package registers them in ``rxlit.analysis.study.STUDIES``."""

from rxlit.analysis.studies import free_lunch, infidelity_table, sg_clime_convergence, smoothing_tradeoff

__all__ = ["free_lunch", "infidelity_table", "sg_clime_convergence", "smoothing_tradeoff"]
