"""Audiences: saved condition rules over a club's members."""
