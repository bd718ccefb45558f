"""distill: train a generative audio model on your own sounds (pure core: no ray, no gradio)."""

__version__ = "0.1.0"
