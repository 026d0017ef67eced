"""The Gradio UI: one module per tab, each exposing ``build_tab(ctx) -> TabHandles``.

UI code only wires widgets to pipeline functions by named arguments; model code lives in ``pipelines``.
"""
