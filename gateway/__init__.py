"""Local, offline-first embedding gateway for Gemini Embedding 2."""
