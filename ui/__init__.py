"""The app's presentation layer: HTML, CSS classes and display wording for what `lfqa_demo` returns.

The backend (`lfqa_demo/`) returns data and never HTML; `app.py` wires these renderers to Gradio.
"""
