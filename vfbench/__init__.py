"""vfbench: memory, throughput and proxy accuracy of efficiency methods for video-first encoders.

A harness around the study "A Simple Recipe for Contrastively Pre-training Video-First Encoders
Beyond 16 Frames" (Papalampidi, Koppula et al., CVPR 2024, arXiv:2312.07395).
"""

__version__ = "0.1.0"
