"""Cryptography for OTR: the DH group, long-term DSA keys, and thin wrappers over
maintained primitives (AES-CTR from ``cryptography``, SHA/HMAC from the standard
library)."""
