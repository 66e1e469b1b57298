"""Inference engine: expert loading, the offline tiny experts, prompt encoding, scoring, batching.

Import from the submodules (`subnet.engine.loading`, `.experts`, `.scoring`, `.prompt`,
`.hf`); this package module stays import-light so `dmoe --help` does not load torch.
"""
