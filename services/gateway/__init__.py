"""Gateway: the mini-program API, and later the pay callback and the operator console."""
