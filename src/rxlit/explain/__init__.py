"""Explanation methods: batched, chunked, deterministic given a generator; no Lightning needed."""

from rxlit.explain.core import METHODS, explain, list_methods, method_options, register_method

__all__ = ["METHODS", "explain", "list_methods", "method_options", "register_method"]
