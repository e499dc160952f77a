"""The peers the gateway is measured against, each set up by the bench itself."""
