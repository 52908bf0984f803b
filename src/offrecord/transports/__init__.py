"""Shells that drive the sans-I/O core: the stdio peer, IRC, XMPP."""
