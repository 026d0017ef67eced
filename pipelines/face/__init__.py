"""Faces: synthesis (DCGAN, DDPM/LDM, our StyleGAN-style trainer: ``synthesis.generate_faces``) and
analysis (MediaPipe Face Mesh landmarks: ``landmarks.detect_faces``).
CLIs: ``python -m pipelines.face_synthesis``, ``python -m pipelines.face_landmarks``.
"""
