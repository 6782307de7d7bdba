"""Figures for people (matplotlib, Agg backend)."""
