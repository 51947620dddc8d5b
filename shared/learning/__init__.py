"""Training and evaluating the failure model (scikit-learn, exported to ONNX). Not imported at run time."""
