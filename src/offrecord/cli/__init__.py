"""The ``offrecord`` command."""
