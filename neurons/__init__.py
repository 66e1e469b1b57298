"""Thin entry points: parse config once, build the process, run it, shut it down."""
