"""Model export: detectors and face embedders as ONNX files (:mod:`convsight.export.onnx`), run with
onnxruntime (:mod:`convsight.export.runtime`). Importing this package imports neither onnx nor torch's
exporter; they load when a function needs them."""
