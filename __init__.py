# ComfyUI loads this file when the repository is cloned into ComfyUI/custom_nodes; the node
# pack itself lives in comfyui/ (see comfyui/README.md). The engine needs no Python.
from .comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F401
