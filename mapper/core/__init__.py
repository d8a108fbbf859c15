"""The core model, the lowest layer: errors, the stream spec, distributions and their
intervals, the span batch, durations, file writing and the metric names latmap writes.

Every other layer imports from here; nothing here imports from them. Submodules are imported
by name (``from mapper.core.distribution import ...``); this package itself loads nothing.
"""
