"""LiteSFU's program entry: `litesfu` or `python -m litesfu`, above the control and media planes."""
