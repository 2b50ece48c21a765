"""The generative fill backend: Wan2.1 VACE outpainting of the masked ERP canvas (+ LoRA).

Submodules import torch/diffusers lazily; import what you need from them directly:
``loading`` (load_wan_components), ``lora`` (inject_lora, add_lora, save_lora), ``tiny``
(save_tiny_wan), ``pipeline`` (the denoising loop), ``backend`` (WanBackend, wan_available).
"""
