"""Evaluation: metrics, timing, bench and peers, and the analyses of the paper's claims C1-C5.

No plotting here (viz/ draws these tables).
"""
