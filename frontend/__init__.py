"""The web page on port 8501 (Gradio)."""
