"""Pictures drawn with QPainter: benchmark bars, counts over time, metrics history, annotated images."""
