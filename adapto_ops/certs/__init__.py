"""Certificates of the site: ACME errors in one line, checks of a provided pair."""
