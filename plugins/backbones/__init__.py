"""Built-in backbone families: unet, timm-unet/<encoder>, nafnet."""
