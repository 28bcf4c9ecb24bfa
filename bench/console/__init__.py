"""`make bench-console`: the console web page's approve-to-next-case time in headless chromium."""
