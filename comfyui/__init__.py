"""Raylight for ComfyUI: multi-GPU Wan 2.1 sampling through `raylight serve`.

ComfyUI loads this package from custom_nodes/. See README.md here for installation.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
