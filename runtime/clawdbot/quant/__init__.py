"""Quantization: weight-only int8/int4 rewriting of a claw_ir graph (weights.py, rewrite.py) and the accuracy
report comparing a quantized model with its fp32 original (report.py). It sits above the session: the report
runs both models."""
