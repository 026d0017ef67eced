"""Text-to-image with diffusers (SD 1.x, SD-Turbo, SDXL): ``text_to_image.generate_images``.
CLI: ``python -m pipelines.text_to_image``.
"""
