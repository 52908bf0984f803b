"""OTR wire formats: the binary codec, encoded messages, TLVs, framing and fragments."""
