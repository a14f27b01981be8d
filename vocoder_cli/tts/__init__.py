"""Text to speech: acoustic models (text -> log-mel) behind one protocol, and the batch runner."""
