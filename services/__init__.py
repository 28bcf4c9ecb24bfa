"""The services: gateway (HTTP) and the workers codec, imaging, matching, notify."""
