"""OpenAI's Files and Batch API routes; the work is gateway/bulk's, reached through port.py."""
