"""Similar inputs: canonical keys beside the byte keys, and near-duplicate reuse that verifies."""
