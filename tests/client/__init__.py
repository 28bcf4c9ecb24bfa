"""The mini-program's contract end-to-end test: a live stack started like `make run`, driven by the real
page logic through a Node `wx` (miniprogram/e2e/). `python -m tests.client` is `make client-e2e`."""
