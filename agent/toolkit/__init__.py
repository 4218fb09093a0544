"""The pure toolkit both programs share: durable writes, hashing, settings, images, ONNX sessions.

The app may import this package (and `agent.wire`, the wire contract) and nothing else of the
agent. So nothing here imports the agent's domain, its HTTP layer, the app or Qt; errors are
the toolkit's own, by cause (`agent.toolkit.errors`), and each program says them its own way.
"""
