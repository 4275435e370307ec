"""Predictivity tables and figures."""
