"""offrecord — Off-the-Record Messaging for Python."""
