"""The --workers front (one HTTP port, N media processes) and the worker side of its link.

The front's modules (front, proxy, balancer, pool, link, messages, stats_answers) import no
sfu module at all.
"""
