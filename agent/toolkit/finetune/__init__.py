"""Fine-tuning a classifier on the kit, in pure pieces the `fine-tune` job kind puts together:
which tensor is the embedding (`embedding`), the labelled set's names and split (`labelled`),
the linear softmax head (`head`), its scores (`scores`) and the new ONNX model (`compose`).

numpy is imported by each module; `onnx` only by the graph modules, inside their functions'
callers (the job kind), so a kit without it is told so by the job, not at the agent's start.
"""
